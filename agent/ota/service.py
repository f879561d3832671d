"""The OTA loop: verified manifest in, observe -> plan -> execute, model status out (level-triggered).

The heartbeat loop hands over each answer (:meth:`OtaService.on_response`); a manifest that passes the
trust gate becomes the desired state and wakes the loop. Every pass re-observes the world, plans from
scratch, and starts one pipeline task per model that has steps and none in flight. A task whose target
is no longer wanted (the tag moved on) is cancelled: a newer version always supersedes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timezone
from itertools import groupby

import httpx

from jetfleet.agent.config import AgentConfig
from jetfleet.agent.http import local_client, tls_for
from jetfleet.agent.ota import states
from jetfleet.agent.ota.components import executor_settings, local_endpoint, make_router, make_runtime
from jetfleet.agent.ota.download import Downloads
from jetfleet.agent.ota.executor import Executor
from jetfleet.agent.ota.fieldstats import FieldStats, parse_counts
from jetfleet.agent.ota.install import ModelStore
from jetfleet.agent.ota.observed import Observed
from jetfleet.agent.ota.plan import PlanContext, plan
from jetfleet.agent.ota.records import RecordStore
from jetfleet.agent.ota.trust import CLOCK_SKEW, ManifestGate, TrustStore
from jetfleet.errors import JetfleetError
from jetfleet.jobs import DesiredJob
from jetfleet.manifest import DesiredModel, ManifestError, ManifestPayload
from jetfleet.protocol import HardwareInfo, HeartbeatResponse, ModelStatus, RegisterResponse
from jetfleet.updatelock import is_held

log = logging.getLogger("jetfleet.agent.ota")


class OtaService:
    def __init__(self, config: AgentConfig, *, device_id: str, hardware: HardwareInfo,
                 token: Callable[[], str | None]) -> None:
        self.config = config
        ota_dir = config.state_dir / "ota"
        self.gate = ManifestGate(TrustStore(ota_dir / "trust.json"), device_id, config.manifest_public_key)
        self.records = RecordStore(ota_dir / "models.json")
        self.store = ModelStore(config.models_dir)
        self.downloads = Downloads(config.models_dir, tls=_tls(config))
        self.runtime = make_runtime(config, hardware, ota_dir)
        self.router = make_router(config, ota_dir)
        self._http = local_client()  # candidate model servers on this host
        self.executor = Executor(executor_settings(config, device_id), store=self.store, downloads=self.downloads,
                                 records=self.records, runtime=self.runtime, router=self.router, token=token,
                                 http=self._http)
        self._tensorrt = hardware.tensorrt is not None
        self._desired: ManifestPayload | None = self.gate.last_accepted(_now())
        self._refusal: tuple[str, dict[str, int]] | None = None  # reason, the versions it announced
        self._observed = Observed()
        self._tasks: dict[str, tuple[asyncio.Task[None], DesiredModel | None]] = {}
        self._wake: asyncio.Event | None = None
        self._last_error: str | None = None
        self.on_desired: Callable[[], None] = lambda: None  # e.g. wakes the jobs loop
        self.field_stats = FieldStats(window=config.ota_metrics_window_seconds)
        self._lock_since: float | None = None  # monotonic time the update lock was first seen held
        self._lock_reported = False

    # -- heartbeat hooks -------------------------------------------------------------------------------
    def on_registered(self, response: RegisterResponse) -> None:
        self.gate.pin_on_first_use(response.manifest_public_key)

    def on_response(self, response: HeartbeatResponse) -> None:
        if response.manifest is None:
            if response.ota:
                self._refuse("VERIFY_ERROR/UNSIGNED", "the control plane announced updates without a signed "
                                                      "manifest", _announced(response))
            return
        try:
            payload = self.gate.accept(response.manifest, _now())
        except ManifestError as exc:
            self._refuse(exc.code, str(exc), _announced(response))
            return
        self._refusal = None
        if self._desired is None or payload.serial != self._desired.serial or payload.models != self._desired.models:
            log.info("manifest %d accepted: %s", payload.serial,
                     ", ".join(f"{m.name} v{m.version}" for m in payload.models) or "no models")
        self._desired = payload
        if self._wake is not None:
            self._wake.set()
        self.on_desired()

    def _refuse(self, code: str, message: str, announced: dict[str, int]) -> None:
        if self._refusal is None or self._refusal[0] != code:
            log.error("refusing the control plane's manifest (%s); keeping the current models", message)
        self._refusal = (code, announced)

    def trusted_keys(self) -> list[str]:
        return self.gate.trusted_key_ids

    # -- status ------------------------------------------------------------------------------------------
    def statuses(self) -> list[ModelStatus]:
        """One entry per model this device serves, wants, or was refused (read by every heartbeat)."""
        desired = {m.name: m for m in self._wanted() or ()}
        names = set(desired) | set(self.records.records) | set(self._observed.routes)
        refused = self._refusal[1] if self._refusal else {}
        result = []
        for name in sorted(names | set(refused)):
            record = self.records.get(name)
            route = self._observed.routes.get(name)
            serving = self._observed.serving_instance(name)
            status = ModelStatus(
                name=name, serving_version=serving.version if serving else None,
                last_known_good=record.last_known_good,
                target_version=desired[name].version if name in desired else record.target_version,
                state=record.state, reason=record.reason,
                endpoint=self.router.endpoint(name, route) if serving and route else None,
                progress_ratio=self.executor.progress.get(name) if record.state == states.DOWNLOADING else None,
                lock_held_seconds=self._lock_held() if record.state == states.DEFERRED else None,
                **self.field_stats.values(name, serving.version if serving else None))
            if self._refusal is not None and name in refused and refused[name] != status.serving_version:
                status = status.model_copy(update={"state": states.FAILED, "reason": self._refusal[0],
                                                   "target_version": refused[name]})
            result.append(status)
        return result

    def _wanted(self) -> tuple[DesiredModel, ...] | None:
        """The desired models while the accepted manifest is valid; None (change nothing) once it expired."""
        if self._desired is None or self._desired.expires_at + CLOCK_SKEW < _now():
            return None
        return self._desired.models

    # -- what headless jobs need ---------------------------------------------------------------------------
    def desired_jobs(self) -> tuple[DesiredJob, ...] | None:
        """The jobs of the last accepted manifest, None before one was accepted (kept after it expires: a device
        off the network keeps running its jobs; the manifest's models stay as they are too)."""
        return self._desired.jobs if self._desired is not None else None

    def desired_model(self, name: str) -> DesiredModel | None:
        return next((m for m in self._desired.models if m.name == name), None) if self._desired else None

    def serving_endpoint(self, name: str) -> tuple[int, str] | None:
        """(version, base URL as this host reaches it) of the model's node endpoint, while it serves."""
        serving = self._observed.serving_instance(name)
        route = self._observed.routes.get(name)
        if serving is None or route is None:
            return None
        return serving.version, local_endpoint(self.config, route)

    # -- the loop ------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._wake = asyncio.Event()
        await asyncio.to_thread(self.store.clean_leftovers)
        try:
            await self.router.start()
        except JetfleetError as exc:
            log.error("the model router did not start (retrying every pass): %s", exc)
        try:
            while not stop.is_set():
                try:
                    await self.reconcile()
                    self._last_error = None
                except JetfleetError as exc:
                    if str(exc) != self._last_error:
                        log.warning("OTA pass failed (retrying): %s", exc)
                    self._last_error = str(exc)
                await self._sleep(stop)
        finally:
            await self._cancel_tasks()

    async def _sleep(self, stop: asyncio.Event) -> None:
        assert self._wake is not None
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(waiters, timeout=self.config.ota_interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._wake.clear()

    async def reconcile(self) -> None:
        """One pass: observe, plan, start a pipeline per model with steps."""
        await self.router.ensure()
        self._reap()
        wanted = self._wanted()
        self._supersede(wanted)
        self._observed = await self._observe()
        await self._sample_field_stats()
        steps = plan(wanted, self._observed, self.records.records, self._context(await self._update_locked()))
        targets = {m.name: m for m in wanted or ()}
        for name, group in groupby(steps, key=lambda step: step.name):
            task = asyncio.create_task(self.executor.run(name, list(group), targets.get(name)),
                                       name=f"ota-{name}")
            task.add_done_callback(lambda _t: self._wake.set() if self._wake else None)
            self._tasks[name] = (task, targets.get(name))

    def _context(self, locked: bool) -> PlanContext:
        c = self.config
        overdue = locked and self._lock_held() > c.update_lock_max_seconds
        return PlanContext(now=time.time(), auto_update=c.auto_update, keep_versions=c.ota_keep_versions,
                           headroom_bytes=c.ota_disk_headroom_bytes, engine_size_factor=c.ota_engine_size_factor,
                           tensorrt=self._tensorrt, update_locked=locked, lock_overdue=overdue)

    # -- update lock and field signals ---------------------------------------------------------------
    async def _update_locked(self) -> bool:
        """Observe the update lock (a fact for the planner); log when it is held past the maximum."""
        held = await asyncio.to_thread(is_held, self.config.update_lock_file)
        if not held:
            if self._lock_since is not None:
                log.info("update lock %s released after %.1f s", self.config.update_lock_file, self._lock_held())
            self._lock_since, self._lock_reported = None, False
            return False
        if self._lock_since is None:
            self._lock_since = time.monotonic()
        if not self._lock_reported and self._lock_held() > self.config.update_lock_max_seconds:
            self._lock_reported = True
            log.warning("update lock %s held for %.0f s (more than update_lock_max_seconds %g): model swaps keep "
                        "waiting; find the holder with: fuser -v %s", self.config.update_lock_file,
                        self._lock_held(), self.config.update_lock_max_seconds, self.config.update_lock_file)
        return True

    def _lock_held(self) -> float:
        return 0.0 if self._lock_since is None else round(time.monotonic() - self._lock_since, 1)

    async def _sample_field_stats(self) -> None:
        """Scrape each serving model server's counters (at most once a second per version)."""
        serving = set()
        for name in self._observed.routes:
            instance = self._observed.serving_instance(name)
            if instance is None:
                continue
            serving.add((name, instance.version))
            if not self.field_stats.due(name, instance.version):
                continue
            url = f"http://{self.executor.settings.upstream_host}:{instance.port}/metrics"
            try:
                response = await self._http.get(url, timeout=2.0)
                response.raise_for_status()
                self.field_stats.add(name, instance.version, parse_counts(response.text))
            except (httpx.HTTPError, ValueError) as exc:
                log.debug("could not read %s: %s", url, exc)
        self.field_stats.keep_only(serving)

    async def _observe(self) -> Observed:
        self.config.models_dir.mkdir(parents=True, exist_ok=True)
        installed = await asyncio.to_thread(self.store.installed)
        downloads = await asyncio.to_thread(self.downloads.partials)
        instances = await self.runtime.instances()
        free = shutil.disk_usage(self.config.models_dir).free
        return Observed(installed=installed, downloads=tuple(downloads), instances=tuple(instances),
                        routes=self.router.routes(), free_bytes=free, busy=frozenset(self._tasks))

    def _reap(self) -> None:
        for name, (task, _target) in list(self._tasks.items()):
            if task.done():
                del self._tasks[name]
                if not task.cancelled() and task.exception() is not None:
                    log.error("OTA pipeline for %s crashed", name, exc_info=task.exception())

    def _supersede(self, wanted: tuple[DesiredModel, ...] | None) -> None:
        if wanted is None:
            return
        current = {m.name: m for m in wanted}
        for name, (task, target) in self._tasks.items():
            if target is not None and current.get(name) != target and not task.done():
                log.info("%s version %s is superseded; stopping its update", name, target.version)
                task.cancel()

    async def _cancel_tasks(self) -> None:
        for task, _target in self._tasks.values():
            task.cancel()
        await asyncio.gather(*(task for task, _ in self._tasks.values()), return_exceptions=True)
        self._tasks.clear()

    async def close(self) -> None:
        """Stop what this agent runs: the pipelines, the process-executor servers, the router."""
        await self._cancel_tasks()
        if self._wake is not None:  # the loop ran (not 'agent run --once')
            with contextlib.suppress(JetfleetError):
                await self.runtime.close()
            await self.router.close()
        await self._http.aclose()



def _announced(response: HeartbeatResponse) -> dict[str, int]:
    """What a refused answer asked for (untrusted: only to say which updates were refused)."""
    announced = {item.model: item.version for item in response.ota}
    if response.manifest is not None:
        with contextlib.suppress(ValueError):
            payload = ManifestPayload.model_validate_json(response.manifest.payload)
            announced.update({m.name: m.version for m in payload.models})
    return announced


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _tls(config: AgentConfig) -> ssl.SSLContext | None:
    """The context artifact downloads verify the control plane with (None: plain http)."""
    context = tls_for([config.backend_url], config.ca_bundle)
    return context if isinstance(context, ssl.SSLContext) else None

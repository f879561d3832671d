"""Applies one model's steps in order: each step has a handler and a phase timeout.

The first failure ends the pipeline. A candidate started by it is stopped and removed (and the route
put back), so the old version keeps serving: ``rolled_back``; with nothing else serving: ``failed``.
Temporary failures (network, 5xx, a restarting Docker daemon) keep the state and retry with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from jetfleet.agent.ota import states
from jetfleet.agent.ota.download import Downloads, Fetch
from jetfleet.agent.ota.failures import StepFailure
from jetfleet.agent.ota.health import golden_check, wait_ready
from jetfleet.agent.ota.install import ModelStore, check_sha256
from jetfleet.agent.ota.observed import Instance, Route
from jetfleet.agent.ota.records import Failure, RecordStore
from jetfleet.agent.ota.router import NodeRouter
from jetfleet.agent.ota.runtime.base import LaunchSpec, ModelRuntime, free_port
from jetfleet.agent.ota.steps import (
    Commit,
    Defer,
    Download,
    Fail,
    Forget,
    HealthCheck,
    Notify,
    RemovePartial,
    RemoveVersion,
    StartCandidate,
    Step,
    StopInstance,
    StopOld,
    Switch,
    Unroute,
    Verify,
)
from jetfleet.errors import JetfleetError, TemporaryError
from jetfleet.manifest import DesiredModel

log = logging.getLogger("jetfleet.agent.ota")
MAX_BACKOFF_SECONDS = 300.0


@dataclass(frozen=True)
class ExecutorSettings:
    backend_url: str
    device_id: str
    bind_host: str
    upstream_host: str
    port_range: tuple[int, int]
    download_timeout: float = 3600.0
    verify_timeout: float = 900.0
    ready_timeout: float = 120.0
    convert_timeout: float = 1800.0
    health_timeout: float = 60.0
    switch_timeout: float = 30.0
    drain_seconds: float = 2.0
    request_timeout: float = 30.0


class Executor:
    def __init__(self, settings: ExecutorSettings, *, store: ModelStore, downloads: Downloads, records: RecordStore,
                 runtime: ModelRuntime, router: NodeRouter, token: Callable[[], str | None],
                 http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.store = store
        self.downloads = downloads
        self.records = records
        self.runtime = runtime
        self.router = router
        self.token = token
        self.http = http
        self.progress: dict[str, float] = {}

    async def run(self, name: str, steps: Sequence[Step], target: DesiredModel | None) -> None:
        """Run ``steps`` for model ``name`` toward ``target`` (None: healing or removal)."""
        pipeline = _Pipeline(name, target)
        for step in steps:
            try:
                await asyncio.wait_for(self._handle(step, pipeline), self._timeout(step))
            except asyncio.CancelledError:
                await self._discard_candidate(pipeline)
                raise
            except Exception as exc:  # every failure ends the pipeline with a reported reason
                await self._failed(step, pipeline, _as_failure(step, exc))
                return
        if target is not None and any(isinstance(s, Commit) for s in steps):
            self.progress.pop(name, None)

    def _timeout(self, step: Step) -> float:
        s = self.settings
        if isinstance(step, Download):
            return s.download_timeout
        if isinstance(step, Verify):
            return s.verify_timeout
        if isinstance(step, StartCandidate):
            return (s.convert_timeout if step.convert else s.ready_timeout) + 30
        if isinstance(step, HealthCheck):
            return s.health_timeout
        if isinstance(step, Switch):
            return s.switch_timeout
        if isinstance(step, StopOld):
            return s.drain_seconds + 60
        return 300.0

    async def _handle(self, step: Step, pipeline: _Pipeline) -> None:
        handlers: dict[type[Step], Callable[[Step, _Pipeline], Awaitable[None]]] = {
            Download: self._download, Verify: self._verify, StartCandidate: self._start,  # type: ignore[dict-item]
            HealthCheck: self._health, Switch: self._switch, Commit: self._commit,  # type: ignore[dict-item]
            StopOld: self._stop_old, StopInstance: self._stop_instance,  # type: ignore[dict-item]
            RemoveVersion: self._remove_version, RemovePartial: self._remove_partial,  # type: ignore[dict-item]
            Unroute: self._unroute, Forget: self._forget, Notify: self._notify, Fail: self._fail,  # type: ignore[dict-item]
            Defer: self._defer,  # type: ignore[dict-item]
        }
        await handlers[type(step)](step, pipeline)

    def _state(self, pipeline: _Pipeline, state: str) -> None:
        target = pipeline.target
        record = self.records.get(pipeline.name)
        self.records.put(record.evolve(state=state, reason=None if state != record.state else record.reason,
                                       target_version=target.version if target else record.target_version))

    # -- fetch and install ---------------------------------------------------------------------------
    async def _download(self, step: Download, pipeline: _Pipeline) -> None:
        self._state(pipeline, states.DOWNLOADING)
        model = step.model
        fetches = [Fetch(model.name, model.version, model.sha256, model.size_bytes, self._url(model.sha256))]
        if model.golden is not None:
            fetches += [Fetch(model.name, model.version, model.sha256, ref.size_bytes, self._url(ref.sha256),
                              kind=f"golden-{kind}") for kind, ref in (("input", model.golden.input),
                                                                      ("output", model.golden.output))]
        cancel = threading.Event()

        def progress(done: int) -> None:
            self.progress[model.name] = done / model.size_bytes if model.size_bytes else 1.0

        started = time.monotonic()
        try:
            for fetch in fetches:
                await asyncio.to_thread(self._fetch, fetch, cancel, progress if fetch.kind == "artifact" else None)
        except asyncio.CancelledError:
            cancel.set()  # the download thread stops at its next chunk; the bytes stay for a resume
            raise
        seconds = time.monotonic() - started
        log.info("downloaded %s version %s: %d bytes (from byte %d) in %.3f s", model.name, model.version,
                 model.size_bytes, step.resume_from, seconds)

    def _fetch(self, fetch: Fetch, cancel: threading.Event, progress: Callable[[int], None] | None) -> None:
        token = self.token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.downloads.fetch(fetch, headers, self.settings.request_timeout, cancel, progress or (lambda _n: None))

    def _url(self, sha256: str) -> str:
        return f"{self.settings.backend_url}/api/v1/edge-devices/{self.settings.device_id}/artifacts/{sha256}"

    async def _verify(self, step: Verify, pipeline: _Pipeline) -> None:
        self._state(pipeline, states.VERIFYING)
        model = step.model
        artifact = Fetch(model.name, model.version, model.sha256, model.size_bytes, "")
        golden = {} if model.golden is None else {
            kind: (Fetch(model.name, model.version, model.sha256, ref.size_bytes, "", kind=f"golden-{kind}"), ref)
            for kind, ref in (("input", model.golden.input), ("output", model.golden.output))}
        try:
            await asyncio.to_thread(check_sha256, self.downloads.part(artifact), model.sha256,
                                    f"{model.name} version {model.version}")
            for kind, (fetch, ref) in golden.items():
                await asyncio.to_thread(check_sha256, self.downloads.part(fetch), ref.sha256, f"golden {kind}")
        except StepFailure as failure:
            resumed = self.downloads.resumed(artifact)
            self.downloads.remove(model.name, model.version, model.sha256)  # never install or resume bad bytes
            if resumed:  # a tail damaged by a power cut: fetch it once more, from zero
                raise StepFailure(failure.reason, f"{failure} (after a resumed download; fetching again)",
                                  temporary=True) from failure
            raise
        files = {kind: self.downloads.part(fetch) for kind, (fetch, _ref) in golden.items()}
        await asyncio.to_thread(self.store.install, model, self.downloads.part(artifact), files)
        self.downloads.remove(model.name, model.version, model.sha256)
        self._state(pipeline, states.STAGED)
        log.info("installed %s version %s (sha256 verified)", model.name, model.version)

    # -- blue/green ----------------------------------------------------------------------------------
    async def _start(self, step: StartCandidate, pipeline: _Pipeline) -> None:
        if not step.heal:
            self._state(pipeline, states.CONVERTING if step.convert else states.ACTIVATING)
        instances = await self.runtime.instances()
        existing = next((i for i in instances if (i.name, i.version) == (step.name, step.version)), None)
        port = existing.port if existing is not None else await asyncio.to_thread(
            free_port, self.settings.port_range, [i.port for i in instances], self.settings.bind_host)
        spec = LaunchSpec(step.name, step.version, self.store.version_dir(step.name, step.version), port,
                          self.settings.bind_host)
        instance = await self.runtime.start(spec)
        pipeline.candidate = instance
        timeout = self.settings.convert_timeout if step.convert else self.settings.ready_timeout
        exited = states.TRT_BUILD if step.convert else "HEALTH_ERROR/LOAD_FAILED"
        try:
            await wait_ready(self.http, self._base(instance), step.name, step.version, timeout,
                             lambda: self.runtime.alive(instance), exited_reason=exited)
        except StepFailure as failure:
            detail = (await self.runtime.logs(instance)).strip().splitlines()[-3:]
            raise StepFailure(failure.reason, f"{failure}; server log: {' | '.join(detail)}") from failure

    async def _health(self, step: HealthCheck, pipeline: _Pipeline) -> None:
        if not step.heal:
            self._state(pipeline, states.HEALTH_CHECK)
        instance = pipeline.candidate or await self._instance(step.name, step.version)
        pipeline.candidate = instance
        await wait_ready(self.http, self._base(instance), step.name, step.version, self.settings.health_timeout,
                         lambda: self.runtime.alive(instance))
        golden = self.store.golden(step.name, step.version)
        if golden is not None:
            await golden_check(self.http, self._base(instance), step.name, step.version, golden)
            log.info("%s version %s passed its golden check", step.name, step.version)

    async def _switch(self, step: Switch, pipeline: _Pipeline) -> None:
        instance = pipeline.candidate or await self._instance(step.name, step.version)
        before = self.router.routes().get(step.name)
        try:
            await self.router.set_route(step.name, Route(step.version, instance.port))
        except BaseException:
            await _quietly(self.router.set_route(step.name, before))  # put the old route back
            raise
        pipeline.switched_at = time.monotonic()
        await asyncio.to_thread(self.store.set_current, step.name, step.version)
        log.info("%s: traffic switched to version %s (port %d)", step.name, step.version, instance.port)

    async def _commit(self, step: Commit, pipeline: _Pipeline) -> None:
        record = self.records.get(step.name)
        lkg = step.replaced if step.replaced is not None else record.last_known_good
        self.records.put(record.evolve(state=states.COMMITTED, reason=None, target_version=step.version,
                                       last_known_good=lkg, failure=None, attempts=0, backoff_until=None))
        pipeline.candidate = None  # it is the serving instance now: never roll it back

    async def _stop_old(self, step: StopOld, pipeline: _Pipeline) -> None:
        if pipeline.switched_at is not None:  # let requests in flight on the old instance finish
            await asyncio.sleep(max(0.0, pipeline.switched_at + self.settings.drain_seconds - time.monotonic()))
        route = self.router.routes().get(step.name)
        for instance in await self.runtime.instances():
            if instance.name == step.name and (route is None or (instance.version, instance.port) !=
                                               (route.version, route.port)):
                await self.runtime.stop(instance)

    async def _stop_instance(self, step: StopInstance, pipeline: _Pipeline) -> None:
        for instance in await self.runtime.instances():
            if instance.ident == step.ident:
                await self.runtime.stop(instance)

    # -- housekeeping --------------------------------------------------------------------------------
    async def _remove_version(self, step: RemoveVersion, pipeline: _Pipeline) -> None:
        route = self.router.routes().get(step.name)
        if route is not None and route.version == step.version:
            raise StepFailure("INTERNAL_ERROR/REMOVE_SERVING", f"refusing to delete the serving {step.name} "
                                                                f"version {step.version}")
        await asyncio.to_thread(self.store.remove, step.name, step.version)
        log.info("removed %s version %s from disk", step.name, step.version)

    async def _remove_partial(self, step: RemovePartial, pipeline: _Pipeline) -> None:
        await asyncio.to_thread(self.downloads.remove, step.name, step.version, step.sha256)

    async def _unroute(self, step: Unroute, pipeline: _Pipeline) -> None:
        await self.router.set_route(step.name, None)
        await asyncio.to_thread(self.store.clear_current, step.name)
        log.info("%s is no longer deployed: unrouted", step.name)

    async def _forget(self, step: Forget, pipeline: _Pipeline) -> None:
        self.records.forget(step.name)
        self.progress.pop(step.name, None)

    async def _notify(self, step: Notify, pipeline: _Pipeline) -> None:
        record = self.records.get(step.name)
        self.records.put(record.evolve(state=states.NOTIFIED, reason=None, target_version=step.model.version))

    async def _defer(self, step: Defer, pipeline: _Pipeline) -> None:
        record = self.records.get(step.name)
        if record.state != states.DEFERRED:
            log.info("%s version %s is staged; the update lock is held, so the switch waits", step.name,
                     step.model.version)
        self.records.put(record.evolve(state=states.DEFERRED, reason=step.reason, target_version=step.model.version))

    async def _fail(self, step: Fail, pipeline: _Pipeline) -> None:
        raise StepFailure(step.reason, f"{step.name} version {step.model.version}", retry_after=step.retry_after)

    # -- failures ------------------------------------------------------------------------------------
    async def _failed(self, step: Step, pipeline: _Pipeline, failure: StepFailure) -> None:
        name, target = pipeline.name, pipeline.target
        started = await self._discard_candidate(pipeline)
        record = self.records.get(name)
        now = time.time()
        backoff_until = now + _backoff(record.attempts)
        if getattr(step, "heal", False) or target is None:
            log.warning("%s: could not restore the serving instance: %s", name, failure)
            self.records.put(record.evolve(backoff_until=backoff_until, attempts=record.attempts + 1))
            return
        attempts = record.attempts + 1
        if failure.temporary:
            retry_at: float | None = backoff_until
            state = record.state
        else:
            retry_at = now + failure.retry_after if failure.retry_after is not None else None
            state = states.ROLLED_BACK if started and await self._serving(name) else states.FAILED
        log.log(logging.WARNING if failure.temporary else logging.ERROR, "%s version %s: %s (%s)", name,
                target.version, failure, "retrying later" if retry_at else "giving up on this version")
        self.records.put(record.evolve(
            state=state, reason=failure.reason, target_version=target.version, attempts=attempts,
            backoff_until=backoff_until,
            failure=Failure(target.version, target.sha256, target.generation, failure.reason, retry_at)))

    async def _discard_candidate(self, pipeline: _Pipeline) -> bool:
        """Stop the candidate this pipeline started (never the serving one); True if there was one."""
        candidate = pipeline.candidate
        if candidate is None:
            return False
        pipeline.candidate = None
        route = self.router.routes().get(pipeline.name)
        if route is not None and (route.version, route.port) == (candidate.version, candidate.port):
            return True
        await _quietly(self.runtime.stop(candidate))
        return True

    async def _serving(self, name: str) -> bool:
        route = self.router.routes().get(name)
        if route is None:
            return False
        try:
            instances = await self.runtime.instances()
        except JetfleetError:
            return True  # cannot tell: the route still points at it
        return any(i.running and (i.version, i.port) == (route.version, route.port) for i in instances)

    async def _instance(self, name: str, version: int) -> Instance:
        for instance in await self.runtime.instances():
            if (instance.name, instance.version) == (name, version) and instance.running:
                return instance
        raise StepFailure("HEALTH_ERROR/NOT_RUNNING", f"no running instance of {name} version {version}")

    def _base(self, instance: Instance) -> str:
        return f"http://{self.settings.upstream_host}:{instance.port}"


class _Pipeline:
    def __init__(self, name: str, target: DesiredModel | None) -> None:
        self.name = name
        self.target = target
        self.candidate: Instance | None = None
        self.switched_at: float | None = None


def _as_failure(step: Step, exc: BaseException) -> StepFailure:
    if isinstance(exc, StepFailure):
        return exc
    kind = _KIND.get(type(step), "INTERNAL_ERROR")
    if isinstance(exc, asyncio.TimeoutError):
        temporary = isinstance(step, (Download, Verify))
        reason = states.READY_TIMEOUT if isinstance(step, StartCandidate) else f"{kind}/TIMEOUT"
        return StepFailure(reason, f"{type(step).__name__} timed out", temporary=temporary)
    if isinstance(exc, TemporaryError):
        return StepFailure(f"{kind}/UNAVAILABLE", str(exc), temporary=True)
    log.exception("unexpected error in %s", type(step).__name__, exc_info=exc)
    return StepFailure(f"{kind}/{type(exc).__name__.upper()}", str(exc) or type(exc).__name__, retry_after=60.0)


_KIND: dict[type[Step], str] = {Download: "DOWNLOAD_ERROR", Verify: "VERIFY_ERROR", StartCandidate: "START_ERROR",
                                HealthCheck: "HEALTH_ERROR", Switch: "SWITCH_ERROR"}


def _backoff(attempts: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, 2.0 * 2 ** attempts))


async def _quietly(awaitable: Awaitable[object]) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.warning("cleanup step failed: %s", exc)


"""The jobs loop: desired jobs (from the verified manifest) + observed state -> plan -> one run task per job.

Each pass (every ``jobs_interval`` seconds, or at once when a manifest or a finished run wakes it) reads the
jobs and the serving models from the OTA service, brings each job's persisted schedule state up to date,
plans, and starts the runs the plan asks for. A run that finished marks its slot and generation done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from jetfleet.agent.client import BackendClient
from jetfleet.agent.config import AgentConfig
from jetfleet.agent.http import local_client
from jetfleet.agent.jobs.counters import JobCounters
from jetfleet.agent.jobs.plan import Endpoint, JobsObserved, Start, Wait, plan
from jetfleet.agent.jobs.schedule import Due, JobState, after_run, initial_state
from jetfleet.jobs import DesiredJob, OutboxStatus
from jetfleet.manifest import DesiredModel, TensorSpecEntry

if TYPE_CHECKING:
    from jetfleet.agent.jobs.outbox import Outbox
    from jetfleet.agent.jobs.runner import KnownFile, RunSummary
    from jetfleet.agent.jobs.upload import Uploader

log = logging.getLogger("jetfleet.agent.jobs")
DRAIN_SECONDS = 1.0


class ModelsView(Protocol):
    """What the jobs need from the OTA service."""

    def desired_jobs(self) -> tuple[DesiredJob, ...] | None:
        """The jobs of the accepted manifest; None while no manifest was accepted."""

    def serving_endpoint(self, name: str) -> tuple[int, str] | None: ...

    def desired_model(self, name: str) -> DesiredModel | None: ...


def outbox_path(state_dir: Path) -> Path:
    return state_dir / "jobs" / "outbox.sqlite3"


class JobsService:
    def __init__(self, config: AgentConfig, *, device_id: str, models: ModelsView, client: BackendClient,
                 token: Callable[[], str | None]) -> None:
        self.config = config
        self.device_id = device_id
        self.models = models
        self.client = client
        self.token = token
        self.counters = JobCounters()
        self._outbox: Outbox | None = None  # opened with the first job (or at start when it has items)
        self._uploader: Uploader | None = None
        self._upload_task: asyncio.Task[None] | None = None
        self._http = local_client()
        self._runs: dict[str, tuple[asyncio.Task[RunSummary], Due]] = {}
        self._signatures: dict[tuple[str, int], tuple[TensorSpecEntry, ...] | None] = {}
        self._known: dict[str, dict[Path, KnownFile]] = {}  # job -> files handled (see RunContext)
        self._wake = asyncio.Event()
        self._logged_waits: dict[str, str] = {}

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "the outbox is opened before it is used"
        return self._outbox

    def status(self) -> OutboxStatus | None:
        """The outbox state (None on a device that never had a job: no outbox, no series, nothing in heartbeats)."""
        return self._outbox.status() if self._outbox is not None else None

    def exported(self) -> tuple[OutboxStatus, int] | None:
        """The outbox state and the items quarantined so far, for the exporter (None: no outbox)."""
        if self._outbox is None:
            return None
        return self._outbox.status(), self._outbox.counters().get("quarantined", 0)

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if outbox_path(self.config.state_dir).exists():
            await self._open(stop)  # items or cut-short runs may be waiting from before
        try:
            while not stop.is_set():
                await self.reconcile(stop)
                await self._sleep(stop)
        finally:
            await self._drain()
            if self._upload_task is not None:
                await self._upload_task

    async def _open(self, stop: asyncio.Event) -> None:
        """Open the outbox (sqlite3 is imported only here: an agent without jobs does not load it)."""
        from jetfleet.agent.jobs.outbox import Outbox, OutboxSettings
        from jetfleet.agent.jobs.upload import Uploader

        c = self.config
        settings = OutboxSettings(max_bytes=c.outbox_max_bytes, policy=c.outbox_full_policy,
                                  batch_max_bytes=c.outbox_batch_max_bytes,
                                  processed_retention_seconds=c.jobs_processed_retention_seconds)
        self._outbox = await asyncio.to_thread(Outbox, outbox_path(c.state_dir), settings)
        await asyncio.to_thread(self._finish_leftovers)
        self._uploader = Uploader(self._outbox, self.client, self.device_id, self.token, c.outbox_retry_max_seconds)
        self._upload_task = asyncio.create_task(self._uploader.run(stop), name="jobs-upload")

    def _finish_leftovers(self) -> None:
        """Runs cut short by a crash: their partial sketches become windows now."""
        for job, run_id in self.outbox.unfinished_runs():
            windows = self.outbox.finish_run(self.device_id, job, run_id)
            log.info("job %s: run %s was cut short; %d sketch windows kept", job, run_id, windows)

    async def reconcile(self, stop: asyncio.Event) -> None:
        await self._reap()
        desired = self.models.desired_jobs()
        if desired is None or (not desired and self._outbox is None):
            return  # no manifest accepted yet, or no job ever: nothing to run, and nothing to forget
        jobs = desired
        if self._outbox is None:
            await self._open(stop)
        now = time.time()
        states = await asyncio.to_thread(self._states, jobs, now)
        full = self.outbox.settings.policy == "pause" and await asyncio.to_thread(self.outbox.full)
        serving = {job.model: s[0] for job in jobs if (s := self.models.serving_endpoint(job.model)) is not None}
        observed = JobsObserved(now=now, states=states, serving=serving, running=frozenset(self._runs),
                                outbox_full=full)
        for decision in plan(jobs, observed):
            if isinstance(decision, Wait):
                self._log_wait(decision)
                continue
            self._start(decision, stop)

    def _states(self, jobs: tuple[DesiredJob, ...], now: float) -> dict[str, JobState]:
        stored = self.outbox.job_states()
        for gone in set(stored) - {job.name for job in jobs} - set(self._runs):
            self.outbox.forget_job(gone)  # deleted (or no longer for this device): a new job of that name
            self._known.pop(gone, None)  # starts afresh
            log.info("job %s is no longer wanted here; its schedule state and processed inputs are forgotten", gone)
        states = {}
        for job in jobs:
            state = initial_state(job, now, stored.get(job.name))
            if state != stored.get(job.name):
                self.outbox.save_job_state(job.name, state)
            states[job.name] = state
        return states

    def _log_wait(self, decision: Wait) -> None:
        name = decision.job.name
        self.counters.waiting(name, decision.reason)
        if self._logged_waits.get(name) != decision.reason:
            log.info("job %s is due but waits: %s (%s)", name, decision.reason, decision.detail)
            self._logged_waits[name] = decision.reason

    def _start(self, decision: Start, stop: asyncio.Event) -> None:
        from jetfleet.agent.jobs.runner import RunContext, run_job  # numpy, DataSketches: only with jobs

        job = decision.job
        self.counters.waiting(job.name, None)
        self._logged_waits.pop(job.name, None)
        log.debug("job %s: %s run starts (model %s)", job.name, decision.due.reason, job.model)
        context = RunContext(device_id=self.device_id, outbox=self.outbox, http=self._http, endpoint=self._endpoint,
                             signature=self._signature, counters=self.counters, stop=stop,
                             known=self._known.setdefault(job.name, {}),
                             poll_seconds=min(1.0, self.config.jobs_interval), on_recorded=self._wake_uploader)
        task = asyncio.create_task(run_job(job, context), name=f"job-{job.name}")
        task.add_done_callback(lambda _t: self._wake.set())
        self._runs[job.name] = (task, decision.due)

    async def _reap(self) -> None:
        for name, (task, done) in list(self._runs.items()):
            if not task.done():
                continue
            del self._runs[name]
            if task.cancelled() or task.exception() is not None:
                log.error("job %s: run crashed", name, exc_info=None if task.cancelled() else task.exception())
                self.counters.run(name, "crashed")
                continue
            summary = task.result()
            outcome = "completed" if summary.complete else "incomplete"
            self.counters.run(name, outcome)
            level = logging.INFO if summary.results or summary.errors or not summary.complete else logging.DEBUG
            log.log(level, "job %s: %s run %s %s: %d results, %d errors, %d already processed, %d sketch windows, "
                    "versions %s", name, done.reason, summary.run_id, outcome, summary.results, summary.errors,
                    summary.skipped, summary.windows, sorted(summary.versions) or "-")
            if summary.complete:
                await asyncio.to_thread(self._mark_done, name, done)

    def _wake_uploader(self) -> None:
        if self._uploader is not None:
            self._uploader.wake.set()

    def _mark_done(self, name: str, done: Due) -> None:
        state = self.outbox.job_states().get(name)
        if state is not None:
            self.outbox.save_job_state(name, after_run(state, done))

    def _endpoint(self, model: str) -> Endpoint | None:
        serving = self.models.serving_endpoint(model)
        return Endpoint(version=serving[0], url=serving[1]) if serving else None

    async def _signature(self, model: str, endpoint: Endpoint) -> tuple[TensorSpecEntry, ...] | None:
        """The declared inputs of the serving version: from the manifest, else the server's metadata."""
        desired = self.models.desired_model(model)
        if desired is not None and desired.version == endpoint.version and desired.inputs is not None:
            return desired.inputs
        key = (model, endpoint.version)
        if key not in self._signatures:
            from jetfleet.agent.jobs.infer import model_inputs

            self._signatures[key] = await model_inputs(self._http, endpoint.url, model, endpoint.version)
        return self._signatures[key]

    async def _sleep(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(waiters, timeout=self.config.jobs_interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._wake.clear()

    async def _drain(self) -> None:
        """Runs see the stop at their next wait; one still inside a request is cancelled after a moment (its
        finished files are in the outbox; the rest run at the next start)."""
        tasks = [task for task, _ in self._runs.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._reap()

    async def close(self) -> None:
        await self._http.aclose()
        if self._outbox is not None:
            self._outbox.close()

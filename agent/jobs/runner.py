"""The executor of one job run: every new file of the input folder through the serving model, into the outbox.

Files are read, hashed, parsed, sketched and recorded in worker threads; only the HTTP calls run on the
event loop. A file whose content hash this job already processed is skipped (a rename is not a new input).
While the model does not serve, the run waits (polling) and goes on with the same file once it does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

from jetfleet.agent.jobs import keys, sketches
from jetfleet.agent.jobs.counters import JobCounters
from jetfleet.agent.jobs.infer import InferenceRefused, ModelUnavailable, infer
from jetfleet.agent.jobs.inputs import Array, InputError, Signature, is_input_file, parse_input
from jetfleet.agent.jobs.outbox import Outbox, RunVersion
from jetfleet.agent.jobs.plan import Endpoint
from jetfleet.jobs import DesiredJob, JobResult

log = logging.getLogger("jetfleet.agent.jobs")


@dataclass(frozen=True)
class RunContext:
    device_id: str
    outbox: Outbox
    http: httpx.AsyncClient
    endpoint: Callable[[str], Endpoint | None]  # model -> where it serves now (None: not serving)
    signature: Callable[[str, Endpoint], Awaitable[Signature | None]]
    counters: JobCounters
    stop: asyncio.Event
    known: dict[Path, KnownFile] = field(default_factory=dict)  # files of this job already handled (by path):
    # an unchanged file is skipped without being read again
    poll_seconds: float = 1.0
    on_recorded: Callable[[], None] = lambda: None  # wakes the uploader


@dataclass(frozen=True)
class KnownFile:
    identity: tuple[int, int, int]  # (inode, size, mtime_ns)
    sha256: str


@dataclass
class RunSummary:
    run_id: str
    complete: bool = False
    results: int = 0
    errors: int = 0
    skipped: int = 0
    windows: int = 0
    versions: set[int] = field(default_factory=set)


class Stopped(Exception):
    """The agent is stopping: the run ends incomplete (it is due again at the next start)."""


async def run_job(job: DesiredJob, ctx: RunContext) -> RunSummary:
    summary = RunSummary(run_id=uuid.uuid4().hex)
    try:
        files = await asyncio.to_thread(list_inputs, Path(job.input_dir))
        seen: set[str] = set()
        for path in files:
            if ctx.outbox.settings.policy == "pause" and await asyncio.to_thread(ctx.outbox.full):
                log.warning("job %s: the outbox is full (policy pause); the run resumes when uploads make room",
                            job.name)
                return summary
            await _one_file(job, ctx, summary, path, seen)
        summary.complete = True
        await asyncio.to_thread(_forget_gone_files, job, ctx, files)
        return summary
    except Stopped:
        return summary
    finally:
        summary.windows = await asyncio.shield(asyncio.to_thread(ctx.outbox.finish_run, ctx.device_id, job.name,
                                                                 summary.run_id))
        ctx.on_recorded()


_MISSING: set[Path] = set()  # folders reported missing (logged once, not at every run)


def list_inputs(folder: Path) -> list[Path]:
    """The input files of ``folder`` (not recursive), by name; a missing folder has none."""
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file() and is_input_file(p.name))
    except FileNotFoundError:
        if folder not in _MISSING:
            log.warning("input folder %s does not exist (yet)", folder)
            _MISSING.add(folder)
        return []
    _MISSING.discard(folder)
    return files


def _forget_gone_files(job: DesiredJob, ctx: RunContext, files: list[Path]) -> None:
    """Only the files in the folder now stay known; the outbox keeps their marks and ages out the others."""
    listed = set(files)
    for path in [p for p in ctx.known if p not in listed]:
        del ctx.known[path]
    dropped = ctx.outbox.keep_processed(job.name, sorted({entry.sha256 for entry in ctx.known.values()}))
    if dropped:
        log.info("job %s: forgot %d processed input(s) gone from %s for longer than the retention", job.name,
                 dropped, job.input_dir)


def _read(path: Path, known: dict[Path, KnownFile]) -> tuple[bytes, str, tuple[int, int, int]] | None:
    """The file's bytes, sha256 and identity; None when it is gone or unchanged since it was handled."""
    try:
        stat = path.stat()
        identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        entry = known.get(path)
        if entry is not None and entry.identity == identity:
            return None
        data = path.read_bytes()
    except OSError:
        return None  # removed or unreadable since listed: the next run sees it again if it is back
    return data, hashlib.sha256(data).hexdigest(), identity


async def _one_file(job: DesiredJob, ctx: RunContext, summary: RunSummary, path: Path, seen: set[str]) -> None:
    read = await asyncio.to_thread(_read, path, ctx.known)
    if read is None:
        summary.skipped += 1
        return
    data, sha, identity = read
    if sha in seen or await asyncio.to_thread(ctx.outbox.processed, job.name, sha):
        ctx.known[path] = KnownFile(identity, sha)
        summary.skipped += 1
        return
    seen.add(sha)
    await _process(job, ctx, summary, path.name, data, sha)
    ctx.known[path] = KnownFile(identity, sha)


async def _process(job: DesiredJob, ctx: RunContext, summary: RunSummary, name: str, data: bytes, sha: str) -> None:
    endpoint = await _wait_serving(job, ctx)
    signature = await ctx.signature(job.model, endpoint)
    try:
        tensors = await asyncio.to_thread(parse_input, data, name, signature)
    except InputError as exc:
        await _record_error(job, ctx, summary, name, sha, endpoint.version, exc.reason)
        return
    while True:
        try:
            version, outputs = await infer(ctx.http, endpoint.url, job.model, tensors)
            break
        except ModelUnavailable as exc:
            log.info("job %s: %s; waiting for the model", job.name, exc)
            await _sleep(ctx)
            endpoint = await _wait_serving(job, ctx)
        except InferenceRefused as exc:
            await _record_error(job, ctx, summary, name, sha, endpoint.version, str(exc))
            return
    await asyncio.to_thread(_record_ok, job, ctx, summary.run_id, name, sha, version, tensors, outputs)
    summary.results += 1
    summary.versions.add(version)
    ctx.counters.input(job.name, "ok")
    ctx.on_recorded()


def _record_ok(job: DesiredJob, ctx: RunContext, run_id: str, name: str, sha: str, version: int,
               tensors: dict[str, Array], outputs: dict[str, Array]) -> None:
    result = JobResult(key=keys.result_key(ctx.device_id, job.name, run_id, sha), job=job.name, run_id=run_id,
                       input=name, input_sha256=sha, model=job.model, version=version,
                       outputs={n: a.tolist() for n, a in outputs.items()}, created_at=_now())
    partials = sketches.partials("input", tensors) + sketches.partials("output", outputs)
    ctx.outbox.record(result, RunVersion(ctx.device_id, job.name, run_id, job.model, version), partials)


async def _record_error(job: DesiredJob, ctx: RunContext, summary: RunSummary, name: str, sha: str,
                        version: int | None, reason: str) -> None:
    log.warning("job %s: input %s: %s", job.name, name, reason)
    result = JobResult(key=keys.result_key(ctx.device_id, job.name, summary.run_id, sha), job=job.name,
                       run_id=summary.run_id, input=name, input_sha256=sha, model=job.model, version=version,
                       error=f"{name}: {reason}"[:2000], created_at=_now())
    run = RunVersion(ctx.device_id, job.name, summary.run_id, job.model, None)
    await asyncio.to_thread(ctx.outbox.record, result, run)
    summary.errors += 1
    ctx.counters.input(job.name, "error")
    ctx.on_recorded()


async def _wait_serving(job: DesiredJob, ctx: RunContext) -> Endpoint:
    waited = False
    while (endpoint := ctx.endpoint(job.model)) is None:
        if not waited:
            log.info("job %s: waiting for %s to serve", job.name, job.model)
            waited = True
        await _sleep(ctx)
    return endpoint


async def _sleep(ctx: RunContext) -> None:
    try:
        await asyncio.wait_for(ctx.stop.wait(), timeout=ctx.poll_seconds)
    except asyncio.TimeoutError:
        return
    raise Stopped()


def _now() -> datetime:
    return datetime.now(timezone.utc)

"""The pure planner: (desired, observed, records, context) -> steps. No I/O, no clock, no config reads.

Per model, from the current situation to the end of the pipeline (download-then-swap)::

    not on disk        [free space]  Download, Verify, StartCandidate, HealthCheck, Switch, Commit, StopOld
    on disk            StartCandidate, HealthCheck, Switch, Commit, StopOld
    candidate running  HealthCheck, Switch, Commit, StopOld        (e.g. after an agent restart)
    serving it         StopInstance (strays), RemoveVersion (keep the latest N, never serving or last-known-good)

The executor runs one model's steps in order and stops at the first failure; the loop re-observes and
plans again, so every pass continues from what is really there. With ``desired`` None (no valid
manifest) nothing changes except healing what already serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jetfleet.agent.ota import states
from jetfleet.agent.ota.observed import Observed
from jetfleet.agent.ota.records import ModelRecord
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
from jetfleet.manifest import DesiredModel


@dataclass(frozen=True)
class PlanContext:
    now: float  # wall-clock seconds (failure retry times are wall clock, they survive restarts)
    auto_update: bool = True
    keep_versions: int = 3
    headroom_bytes: int = 0
    engine_size_factor: float = 1.0  # a TensorRT engine is about this times the ONNX file
    tensorrt: bool = False  # ONNX models get an engine built on this node
    disk_retry_seconds: float = 60.0
    update_locked: bool = False  # a process holds the update lock: stage, but do not switch
    lock_overdue: bool = False  # ... for longer than the configured maximum (reported, never broken)


def plan(desired: Sequence[DesiredModel] | None, observed: Observed, records: Mapping[str, ModelRecord],
         ctx: PlanContext) -> list[Step]:
    wanted = {m.name: m for m in desired or ()}
    names = sorted(set(wanted) | set(observed.routes) | {i.name for i in observed.instances} | set(records))
    steps: list[Step] = []
    for name in names:
        if name in observed.busy:
            continue
        record = records.get(name) or ModelRecord(name)
        if _backing_off(record, wanted.get(name), ctx):
            continue
        if desired is None:
            steps += _heal(name, observed, record, ctx)
        elif name in wanted:
            steps += _plan_model(wanted[name], observed, record, records, ctx)
        else:
            steps += _plan_removed(name, observed, record)
    if desired is not None:
        steps += _stale_partials(wanted, observed)
    return steps


def _plan_model(model: DesiredModel, observed: Observed, record: ModelRecord, records: Mapping[str, ModelRecord],
                ctx: PlanContext) -> list[Step]:
    name = model.name
    route = observed.routes.get(name)
    serving = observed.serving_instance(name)
    if route is not None and route.version == model.version and serving is not None:
        return _converged(model, observed, record, ctx)
    if record.failure is not None and record.failure.blocks(model, ctx.now):
        return _heal(name, observed, record, ctx) + _strays(name, observed)
    if not ctx.auto_update:
        notify: list[Step] = [Notify(name, model)]
        already = (record.state, record.target_version) == (states.NOTIFIED, model.version)
        return _heal(name, observed, record, ctx) + ([] if already else notify)
    installed = observed.installed.get(name, {}).get(model.version)
    if installed is not None and installed.sha256 != model.sha256:
        if route is not None and route.version == model.version:
            return [Fail(name, model, "VERIFY_ERROR/VERSION_CONFLICT")]
        return [RemoveVersion(name, model.version)]  # same number, other content: replace it next pass
    activate = _activate(model, observed, ctx)
    if ctx.update_locked and route is not None:  # a swap under a busy robot: stage only, then wait
        activate = _defer(model, record, ctx)
    if installed is not None:
        return activate
    fetch = _fetch(model, observed, records, ctx)
    return fetch if isinstance(fetch[-1], Fail) else fetch + activate


def _fetch(model: DesiredModel, observed: Observed, records: Mapping[str, ModelRecord],
           ctx: PlanContext) -> list[Step]:
    partial = observed.partial(model.name, model.version, model.sha256)
    if partial is not None and partial.complete:
        return [Verify(model.name, model)]
    done = partial.bytes_done if partial is not None else 0
    reserved = sum(d.size_bytes - d.bytes_done for d in observed.downloads if d.name in observed.busy)
    need = model.size_bytes - done + _engine_bytes(model, ctx) + ctx.headroom_bytes
    short = need - (observed.free_bytes - reserved)
    room: list[Step] = []
    if short > 0:
        victims = _disk_victims(observed, records, model, short, ctx)
        if victims is None:
            return [Fail(model.name, model, states.DISK_SPACE, retry_after=ctx.disk_retry_seconds)]
        room = list(victims)
    return [*room, Download(model.name, model, resume_from=done), Verify(model.name, model)]


def _activate(model: DesiredModel, observed: Observed, ctx: PlanContext) -> list[Step]:
    name = model.name
    route = observed.routes.get(name)
    candidate = next((i for i in observed.instances_of(name) if i.running and i.version == model.version), None)
    steps: list[Step] = []
    if candidate is None:
        steps.append(StartCandidate(name, model.version, convert=needs_engine(model, ctx)))
    replaced = route.version if route is not None and route.version != model.version else None
    return [*steps, HealthCheck(name, model.version), Switch(name, model.version),
            Commit(name, model.version, replaced=replaced), StopOld(name)]


def _defer(model: DesiredModel, record: ModelRecord, ctx: PlanContext) -> list[Step]:
    reason = states.LOCKED_OVERDUE if ctx.lock_overdue else states.LOCKED
    if (record.state, record.reason, record.target_version) == (states.DEFERRED, reason, model.version):
        return []
    return [Defer(model.name, model, reason)]


def _converged(model: DesiredModel, observed: Observed, record: ModelRecord, ctx: PlanContext) -> list[Step]:
    steps: list[Step] = _strays(model.name, observed)
    if (record.state, record.target_version, record.failure) != (states.COMMITTED, model.version, None):
        steps.append(Commit(model.name, model.version))
    return steps + _cleanup(model.name, observed, record, ctx, serving=model.version)


def _heal(name: str, observed: Observed, record: ModelRecord, ctx: PlanContext) -> list[Step]:
    """Bring back the routed version when its instance is gone (daemon restart, crash, removed container)."""
    route = observed.routes.get(name)
    if route is None or observed.serving_instance(name) is not None:
        return []
    if route.version not in observed.installed.get(name, {}):
        return []
    running = any(i.running and i.version == route.version for i in observed.instances_of(name))
    start: list[Step] = [] if running else [StartCandidate(name, route.version, heal=True)]
    return [*start, HealthCheck(name, route.version, heal=True), Switch(name, route.version, heal=True)]


def _backing_off(record: ModelRecord, model: DesiredModel | None, ctx: PlanContext) -> bool:
    """A pipeline of this model failed a moment ago: wait (unless a new version is wanted meanwhile)."""
    if record.backoff_until is None or ctx.now >= record.backoff_until:
        return False
    return model is None or model.version == record.target_version


def _strays(name: str, observed: Observed) -> list[Step]:
    """Instances the route does not point at (a candidate left by a crash, a dead container)."""
    serving = observed.serving_instance(name)
    return [StopInstance(name, i.version, i.ident) for i in observed.instances_of(name) if i != serving]


def _cleanup(name: str, observed: Observed, record: ModelRecord, ctx: PlanContext, serving: int) -> list[Step]:
    versions = sorted(observed.installed.get(name, {}), reverse=True)
    keep = set(versions[:ctx.keep_versions]) | {serving}
    if record.last_known_good is not None:
        keep.add(record.last_known_good)
    return [RemoveVersion(name, v) for v in sorted(set(versions) - keep)]


def _plan_removed(name: str, observed: Observed, record: ModelRecord) -> list[Step]:
    steps: list[Step] = [Unroute(name)] if name in observed.routes else []
    steps += [StopInstance(name, i.version, i.ident) for i in observed.instances_of(name)]
    if record.state is not None or record.target_version is not None or steps:
        steps.append(Forget(name))
    return steps


def _stale_partials(wanted: Mapping[str, DesiredModel], observed: Observed) -> list[Step]:
    def stale(name: str, version: int, sha256: str) -> bool:
        model = wanted.get(name)
        return model is None or (model.version, model.sha256) != (version, sha256)

    return [RemovePartial(d.name, d.version, d.sha256) for d in observed.downloads
            if d.name not in observed.busy and stale(d.name, d.version, d.sha256)]


def _disk_victims(observed: Observed, records: Mapping[str, ModelRecord], model: DesiredModel, short: int,
                  ctx: PlanContext) -> list[Step] | None:
    """Versions to delete to free ``short`` bytes: never serving, last-known-good or wanted; oldest first.

    None when even deleting all of them would not be enough (then nothing is deleted).
    """
    candidates: list[tuple[int, str, int, int]] = []
    for name, versions in observed.installed.items():
        protected = {model.version} if name == model.name else set()
        route = observed.routes.get(name)
        if route is not None:
            protected.add(route.version)
        lkg = records[name].last_known_good if name in records else None
        if lkg is not None:
            protected.add(lkg)
        newest = sorted(versions, reverse=True)[:ctx.keep_versions]
        for version, installed in versions.items():
            if version not in protected and name not in observed.busy:
                candidates.append((version in newest, name, version, installed.disk_bytes))
    victims: list[Step] = []
    freed = 0
    for _kept, name, version, size in sorted(candidates):
        if freed >= short:
            break
        victims.append(RemoveVersion(name, version))
        freed += size
    return victims if freed >= short else None


def needs_engine(model: DesiredModel, ctx: PlanContext) -> bool:
    onnx = model.filename.lower().endswith(".onnx")
    return onnx and (model.framework == "tensorrt" or (model.framework == "onnx" and ctx.tensorrt))


def _engine_bytes(model: DesiredModel, ctx: PlanContext) -> int:
    return int(model.size_bytes * ctx.engine_size_factor) if needs_engine(model, ctx) else 0

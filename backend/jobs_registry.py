"""Jobs as desired state: create, list, run now, delete, and each device's jobs for its manifest.

Like :mod:`jetfleet.backend.model_registry`, every function takes an open session and the API module owns
the transaction; functions that change what devices should run return the affected device ids, whose
manifest serials the caller bumps in the same transaction.

Targets: a job names its devices (``target="devices"``, rows in ``job_targets``), runs on every registered
device (``target="all"``) or on the devices whose labels match its selector (``target="selector"``, resolved
on every read, so a device labelled later gets the job; a label change bumps that device's serial).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jetfleet.backend.artifacts import InvalidField
from jetfleet.backend.devices import select_devices
from jetfleet.backend.job_schemas import CreateJob, JobRecord
from jetfleet.backend.jobs_models import Job, JobResultRow, JobTarget
from jetfleet.backend.models import Device, ModelTag, ModelVersion
from jetfleet.errors import ConflictError, NotFoundError
from jetfleet.jobs import DesiredJob
from jetfleet.selectors import Selector, parse_selector


def validate(session: Session, body: CreateJob) -> None:
    """Refuse a job whose schedule, model or tag is wrong, naming the field."""
    if body.schedule == "every" and body.every_seconds is None:
        raise InvalidField("every_seconds", "a job scheduled 'every' needs an interval (--every DURATION)")
    if body.schedule == "cron" and not body.cron:
        raise InvalidField("cron", "a job scheduled 'cron' needs an expression (--cron \"EXPR\")")
    if body.schedule != "every" and body.every_seconds is not None:
        raise InvalidField("every_seconds", f"only a job scheduled 'every' has an interval, not '{body.schedule}'")
    if body.schedule != "cron" and body.cron is not None:
        raise InvalidField("cron", f"only a job scheduled 'cron' has an expression, not '{body.schedule}'")
    if body.cron is not None and not croniter.is_valid(body.cron):
        raise InvalidField("cron", f"{body.cron!r} is not a valid cron expression (e.g. \"*/15 * * * *\")")
    if [bool(body.devices), body.all, body.selector is not None].count(True) != 1:
        raise InvalidField("devices", "give exactly one of: device ids (--device ID), all=true (--all) or a "
                                      "selector (--selector)")
    if body.selector is not None:
        parse_selector(body.selector)
    if session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.name == body.model)) == 0:
        raise NotFoundError(f"model: unknown model '{body.model}' (push it first: jetfleet models push)")
    if session.get(ModelTag, (body.model, body.tag)) is None:
        tags = ", ".join(sorted(session.scalars(select(ModelTag.tag).where(ModelTag.name == body.model)))) or "none"
        raise NotFoundError(f"tag: model '{body.model}' has no tag '{body.tag}' (tags: {tags})")


def create(session: Session, body: CreateJob, now: datetime) -> tuple[Job, list[str]]:
    validate(session, body)
    if session.scalar(select(Job.id).where(Job.name == body.name)) is not None:
        raise ConflictError(f"name: a job named '{body.name}' exists already (delete it first)")
    devices = _known_devices(session, body.devices) if body.devices else []
    job = Job(name=body.name, model=body.model, tag=body.tag, input_dir=body.input_dir, schedule=body.schedule,
              every_seconds=body.every_seconds, cron=body.cron, target=_target(body),
              selector={"expr": body.selector} if body.selector is not None else None, run_generation=0,
              created_at=now, updated_at=now)
    session.add(job)
    session.flush()
    session.add_all(JobTarget(job_id=job.id, device_id=d, explicit=True, extra_runs=0) for d in devices)
    session.flush()
    return job, _resolve(session, job)


def _target(body: CreateJob) -> str:
    return "all" if body.all else "selector" if body.selector is not None else "devices"


def _selector_text(job: Job) -> str | None:
    expr = (job.selector or {}).get("expr")
    return None if expr is None else str(expr)


def _selector(job: Job) -> Selector:
    return parse_selector(_selector_text(job) or "")


def get(session: Session, name: str) -> Job:
    job = session.scalar(select(Job).where(Job.name == name))
    if job is None:
        raise NotFoundError(f"unknown job '{name}'")
    return job


def delete(session: Session, name: str) -> list[str]:
    job = get(session, name)
    devices = _resolve(session, job)
    session.delete(job)
    return devices


def run_now(session: Session, name: str, device_ids: list[str], now: datetime) -> list[str]:
    """Make the job's devices (or the given ones of them) run it once more: their run_generation grows."""
    job = get(session, name)
    targets = _resolve(session, job)
    if not device_ids:
        job.run_generation += 1
        job.updated_at = now
        return targets
    outside = [d for d in device_ids if d not in targets]
    if outside:
        raise InvalidField("devices", f"job '{name}' does not run on {', '.join(outside)} "
                                      f"(its devices: {', '.join(targets) or 'none'})")
    chosen = list(dict.fromkeys(device_ids))
    for device_id in chosen:
        row = session.get(JobTarget, (job.id, device_id))
        if row is None:  # an "all" job: a row that only counts the extra runs
            session.add(JobTarget(job_id=job.id, device_id=device_id, explicit=False, extra_runs=1))
        else:
            row.extra_runs += 1
    job.updated_at = now
    return chosen


def _resolve(session: Session, job: Job) -> list[str]:
    """The device ids a job runs on now."""
    if job.target == "all":
        return list(session.scalars(select(Device.device_id).order_by(Device.device_id)))
    if job.target == "selector":
        return select_devices(session, _selector_text(job) or "")
    query = select(JobTarget.device_id).where(JobTarget.job_id == job.id, JobTarget.explicit.is_(True))
    return list(session.scalars(query.order_by(JobTarget.device_id)))


def _known_devices(session: Session, device_ids: list[str]) -> list[str]:
    known = set(session.scalars(select(Device.device_id).where(Device.device_id.in_(device_ids))))
    missing = [d for d in device_ids if d not in known]
    if missing:
        raise NotFoundError(f"devices: unknown device(s) {', '.join(missing)}")
    return list(dict.fromkeys(device_ids))


def desired_job(job: Job, extra_runs: int) -> DesiredJob:
    return DesiredJob(name=job.name, model=job.model, tag=job.tag, input_dir=job.input_dir,
                      schedule=job.schedule, every_seconds=job.every_seconds, cron=job.cron,  # type: ignore[arg-type]
                      run_generation=job.run_generation + extra_runs)


def jobs_by_device(session: Session, device_ids: Iterable[str] | None = None) -> dict[str, list[DesiredJob]]:
    """Each device's desired jobs (sorted by name), for the given devices or every device: three queries."""
    wanted = None if device_ids is None else set(device_ids)
    jobs = list(session.scalars(select(Job).order_by(Job.name)))
    if not jobs:
        return {}
    rows = session.execute(select(JobTarget.job_id, JobTarget.device_id, JobTarget.explicit, JobTarget.extra_runs))
    explicit: dict[int, set[str]] = {}
    extra: dict[tuple[int, str], int] = {}
    for job_id, device_id, is_explicit, runs in rows:
        if is_explicit:
            explicit.setdefault(job_id, set()).add(device_id)
        extra[(job_id, device_id)] = runs
    labels: dict[str, dict[str, str]] = {}
    if any(job.target in ("all", "selector") for job in jobs):
        query = select(Device.device_id, Device.labels)
        if wanted is not None:
            query = query.where(Device.device_id.in_(wanted))
        labels = {device_id: device_labels or {} for device_id, device_labels in session.execute(query)}
    result: dict[str, list[DesiredJob]] = {}
    for job in jobs:
        for device_id in _targets_of(job, labels, explicit):
            if wanted is None or device_id in wanted:
                result.setdefault(device_id, []).append(desired_job(job, extra.get((job.id, device_id), 0)))
    return result


def _targets_of(job: Job, labels: dict[str, dict[str, str]], explicit: dict[int, set[str]]) -> Iterable[str]:
    if job.target == "all":
        return labels
    if job.target == "selector":
        selector = _selector(job)
        return [device_id for device_id, device_labels in labels.items() if selector.matches(device_labels)]
    return explicit.get(job.id, ())


def record(session: Session, job: Job) -> JobRecord:
    tag = session.get(ModelTag, (job.model, job.tag))
    results = session.scalar(select(func.count()).select_from(JobResultRow).where(JobResultRow.job == job.name))
    return JobRecord(name=job.name, model=job.model, tag=job.tag, version=tag.version if tag else None,
                     input_dir=job.input_dir, schedule=job.schedule, every_seconds=job.every_seconds,  # type: ignore[arg-type]
                     cron=job.cron, target=job.target, selector=_selector_text(job),
                     devices=_resolve(session, job),
                     run_generation=job.run_generation, results=results or 0, created_at=job.created_at,
                     updated_at=job.updated_at)


def list_jobs(session: Session) -> list[JobRecord]:
    return [record(session, job) for job in session.scalars(select(Job).order_by(Job.name))]

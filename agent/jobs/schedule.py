"""When a job is due (pure): schedule slots, catch-up after downtime, on-demand generations.

* ``every``: slots at ``anchor + k * every_seconds``, the anchor being when the device first saw the job; a new
  job runs at once. ``cron``: slots are the cron times (UTC); a new job waits for its next slot.
* A job is due when a slot passed that no finished run covers. However many slots passed while the device
  was off, one run covers them all (catch-up runs once, not once per missed slot).
* Any job (``on_demand`` or scheduled) is also due when ``run_generation`` grew past the last one run
  (``jetfleet jobs run``).
* A run marks its slot and generation done only when it finishes: a run cut short (power loss, kill) is
  due again at the next start, and only the files it did not process are run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from jetfleet.jobs import DesiredJob

DueReason = Literal["schedule", "catch-up", "on_demand"]


@dataclass(frozen=True)
class JobState:
    """What the device remembers of one job (persisted in the outbox database)."""

    spec: str  # the schedule it was computed for: a changed schedule starts over
    anchor: float  # unix time the device first saw this schedule
    last_slot: float | None  # the latest slot a finished run covers (None: none yet)
    generation: int = 0  # the last run_generation run


@dataclass(frozen=True)
class Due:
    reason: DueReason
    slot: float | None  # the slot this run covers (None: an on-demand run only)
    generation: int  # the run_generation it covers


class ScheduleError(ValueError):
    """A job's schedule cannot be evaluated (e.g. a cron expression croniter does not accept)."""


def spec_of(job: DesiredJob) -> str:
    if job.schedule == "every":
        return f"every:{job.every_seconds}"
    if job.schedule == "cron":
        return f"cron:{job.cron}"
    return "on_demand"


def initial_state(job: DesiredJob, now: float, stored: JobState | None) -> JobState:
    """The stored state when it is for this schedule, else a fresh one (the generation survives)."""
    spec = spec_of(job)
    if stored is not None and stored.spec == spec:
        return stored
    generation = stored.generation if stored is not None else 0
    try:
        last_slot = latest_slot(job, now) if job.schedule == "cron" else None
    except ScheduleError:
        last_slot = None  # reported by the planner on every pass
    return JobState(spec=spec, anchor=now, last_slot=last_slot, generation=generation)


def latest_slot(job: DesiredJob, now: float, anchor: float | None = None) -> float | None:
    """The latest schedule slot at or before ``now`` (None for on-demand jobs)."""
    if job.schedule == "every":
        assert job.every_seconds is not None
        start = now if anchor is None else anchor
        return start + math.floor(max(0.0, now - start) / job.every_seconds) * job.every_seconds
    if job.schedule == "cron":
        croniter = _croniter()
        if not job.cron or not croniter.is_valid(job.cron):
            raise ScheduleError(f"job {job.name}: cron expression {job.cron!r} is not valid")
        return float(croniter(job.cron, _local(now)).get_prev(float))
    return None


def due(job: DesiredJob, state: JobState, now: float) -> Due | None:
    """Whether ``job`` should run now, and what that run covers."""
    slot = latest_slot(job, now, state.anchor)
    slot_due = slot is not None and (state.last_slot is None or slot > state.last_slot)
    generation_due = job.run_generation > state.generation
    if not slot_due and not generation_due:
        return None
    if not slot_due:
        return Due("on_demand", None, job.run_generation)
    assert slot is not None
    reason: DueReason = "catch-up" if _missed_several(job, state, slot) else "schedule"
    return Due(reason, slot, job.run_generation)


def _missed_several(job: DesiredJob, state: JobState, slot: float) -> bool:
    if state.last_slot is None:
        return False
    if job.schedule == "every":
        assert job.every_seconds is not None
        return slot - state.last_slot > job.every_seconds
    return float(_croniter()(str(job.cron), _local(state.last_slot)).get_next(float)) < slot


def _local(timestamp: float) -> datetime:
    """The device's local time (what `jetfleet jobs create --cron` means; UTC on most Jetson images)."""
    return datetime.fromtimestamp(timestamp, timezone.utc).astimezone()


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError as exc:  # the jobs extra is not installed
        raise ScheduleError("cron schedules need the croniter package; install the jobs extra:"
                            " pip install '.[jobs]' in the jetfleet checkout") from exc
    return croniter


def after_run(state: JobState, done: Due) -> JobState:
    """The state once a run that covered ``done`` finished."""
    last_slot = state.last_slot
    if done.slot is not None:
        last_slot = done.slot if last_slot is None else max(last_slot, done.slot)
    return replace(state, last_slot=last_slot, generation=max(state.generation, done.generation))

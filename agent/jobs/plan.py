"""The jobs planner (pure): desired jobs + what the device observes -> which runs to start now.

A due job whose model is not serving waits (it is still due at the next pass, so it runs as soon as the
model serves); a job with a run in flight gets no second one; under the ``pause`` outbox policy a full
outbox holds every new run back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jetfleet.agent.jobs.schedule import Due, JobState, ScheduleError, due
from jetfleet.jobs import DesiredJob

MODEL_NOT_SERVING = "MODEL_NOT_SERVING"
OUTBOX_FULL = "OUTBOX_FULL"
SCHEDULE_INVALID = "SCHEDULE_INVALID"


@dataclass(frozen=True)
class Endpoint:
    version: int
    url: str  # the node endpoint's base URL, as this host reaches it


@dataclass(frozen=True)
class JobsObserved:
    now: float
    states: Mapping[str, JobState]  # job name -> state (every desired job has one)
    serving: Mapping[str, int]  # model name -> the version its node endpoint serves
    running: frozenset[str] = frozenset()  # jobs with a run in flight
    outbox_full: bool = False  # only set under the ``pause`` policy


@dataclass(frozen=True)
class Start:
    job: DesiredJob
    due: Due


@dataclass(frozen=True)
class Wait:
    job: DesiredJob
    reason: str
    detail: str = ""


Decision = Start | Wait


def plan(jobs: Iterable[DesiredJob], observed: JobsObserved) -> list[Decision]:
    decisions: list[Decision] = []
    for job in sorted(jobs, key=lambda j: j.name):
        if job.name in observed.running:
            continue
        try:
            when = due(job, observed.states[job.name], observed.now)
        except ScheduleError as exc:
            decisions.append(Wait(job, SCHEDULE_INVALID, str(exc)))
            continue
        if when is None:
            continue
        if job.model not in observed.serving:
            decisions.append(Wait(job, MODEL_NOT_SERVING, f"{job.model} is not serving on this device"))
        elif observed.outbox_full:
            decisions.append(Wait(job, OUTBOX_FULL, "the results outbox is full (policy: pause)"))
        else:
            decisions.append(Start(job, when))
    return decisions

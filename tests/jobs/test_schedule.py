"""The jobs planner and schedules (pure): due slots, catch-up once, on-demand generations, waiting for the model."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jetfleet.agent.jobs.plan import MODEL_NOT_SERVING, OUTBOX_FULL, SCHEDULE_INVALID, JobsObserved, Start, Wait, plan
from jetfleet.agent.jobs.schedule import Due, JobState, after_run, due, initial_state
from jetfleet.jobs import DesiredJob

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc).timestamp()


def job(**fields: Any) -> DesiredJob:
    base: dict[str, Any] = {"name": "score", "model": "dense", "tag": "prod", "input_dir": "/data/in",
                            "schedule": "every", "every_seconds": 60.0}
    return DesiredJob(**{**base, **fields})


def test_every_runs_at_once_then_once_per_interval() -> None:
    j = job()
    state = initial_state(j, T0, None)
    first = due(j, state, T0)
    assert first == Due("schedule", T0, 0)
    state = after_run(state, first)
    assert due(j, state, T0 + 59) is None
    second = due(j, state, T0 + 61)
    assert second == Due("schedule", T0 + 60, 0)


def test_missed_slots_while_off_run_once_on_start() -> None:
    j = job()
    state = after_run(initial_state(j, T0, None), Due("schedule", T0, 0))
    # the device was off for ten intervals: one catch-up run covers them all
    catch_up = due(j, state, T0 + 10 * 60 + 5)
    assert catch_up is not None and catch_up.reason == "catch-up" and catch_up.slot == T0 + 600
    state = after_run(state, catch_up)
    assert due(j, state, T0 + 10 * 60 + 30) is None
    assert due(j, state, T0 + 11 * 60) == Due("schedule", T0 + 660, 0)


def test_cron_waits_for_its_first_slot_and_catches_up_once() -> None:
    j = job(schedule="cron", every_seconds=None, cron="*/5 * * * *")
    state = initial_state(j, T0 + 60, None)  # 12:01: the 12:00 slot predates the job
    assert due(j, state, T0 + 120) is None
    at_1205 = due(j, state, T0 + 301)
    assert at_1205 == Due("schedule", T0 + 300, 0)
    state = after_run(state, at_1205)
    late = due(j, state, T0 + 3600 + 10)  # off from 12:05 to 13:00: twelve slots missed
    assert late == Due("catch-up", T0 + 3600, 0)
    assert due(j, after_run(state, late), T0 + 3600 + 20) is None


def test_on_demand_runs_once_per_generation() -> None:
    j = job(schedule="on_demand", every_seconds=None)
    state = initial_state(j, T0, None)
    assert due(j, state, T0 + 10_000) is None
    bumped = job(schedule="on_demand", every_seconds=None, run_generation=1)
    run = due(bumped, state, T0 + 10_001)
    assert run == Due("on_demand", None, 1)
    state = after_run(state, run)
    assert due(bumped, state, T0 + 20_000) is None
    assert due(job(schedule="on_demand", every_seconds=None, run_generation=3), state, T0) == Due("on_demand", None, 3)


def test_run_now_also_applies_to_scheduled_jobs_and_the_generation_survives_a_schedule_change() -> None:
    j = job(run_generation=2)
    state = after_run(initial_state(j, T0, None), Due("schedule", T0, 2))
    assert due(j, state, T0 + 1) is None
    assert due(job(run_generation=3), state, T0 + 1) == Due("on_demand", None, 3)
    changed = job(every_seconds=3600.0, run_generation=2)
    fresh = initial_state(changed, T0 + 5, state)
    assert fresh.anchor == T0 + 5 and fresh.last_slot is None and fresh.generation == 2
    assert initial_state(j, T0 + 5, state) is state


def observed(state: JobState, **fields: Any) -> JobsObserved:
    base: dict[str, Any] = {"now": T0, "states": {"score": state}, "serving": {"dense": 1}}
    return JobsObserved(**{**base, **fields})


def test_planner_waits_for_the_model_instead_of_failing() -> None:
    j = job()
    state = initial_state(j, T0, None)
    [decision] = plan([j], observed(state, serving={}))
    assert isinstance(decision, Wait) and decision.reason == MODEL_NOT_SERVING
    [decision] = plan([j], observed(state))
    assert isinstance(decision, Start) and decision.due.slot == T0


def test_planner_skips_running_jobs_and_holds_back_under_a_full_pause_outbox() -> None:
    j = job()
    state = initial_state(j, T0, None)
    assert plan([j], observed(state, running=frozenset({"score"}))) == []
    [decision] = plan([j], observed(state, outbox_full=True))
    assert isinstance(decision, Wait) and decision.reason == OUTBOX_FULL


def test_planner_reports_a_bad_cron_expression() -> None:
    j = job(schedule="cron", every_seconds=None, cron="not a cron")
    state = initial_state(j, T0, None)
    [decision] = plan([j], observed(state))
    assert isinstance(decision, Wait) and decision.reason == SCHEDULE_INVALID and "not a cron" in decision.detail

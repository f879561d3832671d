"""The pure parts of rollouts: selectors, wave planning, failure budgets, gates and the state machine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from jetfleet.backend.artifacts import InvalidField
from jetfleet.backend.rollout_machine import DeviceReport, abort, advance, new_rollout, pause, resume
from jetfleet.backend.rollout_spec import parse_duration, parse_gate, parse_max_failures, parse_waves, plan_waves
from jetfleet.errors import ConflictError
from jetfleet.selectors import SelectorError, parse_labels, parse_selector

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def test_selector_operators() -> None:
    selector = parse_selector("role=vision, site!=lab-b, tier in (a, b), zone notin (x), gpu, !broken")
    assert selector.matches({"role": "vision", "tier": "a", "gpu": "1"})
    assert selector.matches({"role": "vision", "tier": "b", "gpu": "", "site": "lab-a", "zone": "y"})
    assert not selector.matches({"role": "audio", "tier": "a", "gpu": "1"})
    assert not selector.matches({"role": "vision", "tier": "a", "gpu": "1", "site": "lab-b"})
    assert not selector.matches({"role": "vision", "tier": "c", "gpu": "1"})
    assert not selector.matches({"role": "vision", "tier": "a", "gpu": "1", "zone": "x"})
    assert not selector.matches({"role": "vision", "tier": "a"})
    assert not selector.matches({"role": "vision", "tier": "a", "gpu": "1", "broken": "yes"})
    assert parse_selector("role==vision").matches({"role": "vision"})


@pytest.mark.parametrize(("text", "named"), [
    ("", "empty selector"), ("role=vision,,site=a", "empty requirement"), ("tier in (a, b", "unclosed"),
    ("tier in ()", "tier in ()"), ("ro le=x", "ro le=x"), ("role=vi sion", "role=vi sion"),
    ("role=$x", "'$x'"), ("tier in (a,)", "tier in (a,)"),
])
def test_selector_errors_name_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(SelectorError, match="--selector") as info:
        parse_selector(text)
    assert named in str(info.value)


def test_labels() -> None:
    assert parse_labels(["role=vision", "site=lab-a", "empty="]) == {"role": "vision", "site": "lab-a", "empty": ""}
    with pytest.raises(SelectorError, match="expected key=value"):
        parse_labels(["role"])


def test_wave_planning() -> None:
    devices = [f"d{i}" for i in range(10)]
    assert plan_waves(parse_waves("1,10%,50%,100%"), devices) == [["d0"], ["d1", "d2", "d3", "d4"],
                                                                    devices[5:]]
    assert plan_waves(parse_waves("1,100%"), devices[:4]) == [["d0"], ["d1", "d2", "d3"]]
    assert plan_waves(parse_waves("1,50%,100%"), devices[:4]) == [["d0"], ["d1"], ["d2", "d3"]]
    assert plan_waves(parse_waves("2"), devices[:4]) == [["d0", "d1"], ["d2", "d3"]]  # the rest: one more wave
    assert plan_waves(parse_waves("25%,100%"), devices[:3]) == [["d0"], ["d1", "d2"]]
    assert plan_waves(parse_waves("5,100%"), devices[:3]) == [devices[:3]]


@pytest.mark.parametrize("text", ["", "1,,2", "0", "abc", "150%", "0%", "50%,10%", "3,1"])
def test_bad_waves(text: str) -> None:
    with pytest.raises(InvalidField, match="rollout"):
        parse_waves(text)


def test_budgets_durations_gates() -> None:
    assert parse_max_failures("0").allowed(10) == 0
    assert parse_max_failures("2").allowed(10) == 2
    assert parse_max_failures("10%").allowed(25) == 2
    for bad in ("-1", "x", "120%"):
        with pytest.raises(InvalidField, match="max_failures"):
            parse_max_failures(bad)
    assert parse_duration("30") == 30 and parse_duration("2m") == 120 and parse_duration("500ms") == 0.5
    with pytest.raises(InvalidField, match="soak"):
        parse_duration("soon")
    gate = parse_gate("p99_ms < 50")
    assert gate.holds({"p99_ms": 12.0}) is True and gate.holds({"p99_ms": 50.0}) is False
    assert gate.holds({}) is None
    assert parse_gate("error_ratio<=0.01").holds({"error_ratio": 0.01}) is True
    with pytest.raises(InvalidField, match="unknown metric 'p42_ms'"):
        parse_gate("p42_ms<1")
    with pytest.raises(InvalidField, match="METRIC OP NUMBER"):
        parse_gate("p99_ms=<1")


def _rollout(waves: list[list[str]], **kwargs: object) -> object:
    spec = {"max_failures": "0", "soak_seconds": 10.0, "gates": []} | kwargs
    return new_rollout(model="m", tag="prod", from_version=1, to_version=2, waves=waves, now=T0, **spec)  # type: ignore[arg-type]


def committed(**gates: float) -> DeviceReport:
    return DeviceReport(serving_version=2, target_version=2, state="committed", gates=gates)


def test_waves_progress_one_at_a_time_with_soak() -> None:
    r = _rollout([["a"], ["b", "c"]])
    r = advance(r, {}, T0)  # type: ignore[arg-type]
    assert [w.state for w in r.waves] == ["updating", "pending"] and r.wants_new() == {"a"}
    r = advance(r, {"a": DeviceReport(serving_version=1, target_version=2, state="downloading")}, T0)
    assert r.device("a").state == "updating"
    r = advance(r, {"a": committed()}, T0 + timedelta(seconds=1))
    assert r.waves[0].state == "soaking" and r.wants_new() == {"a"}
    r = advance(r, {"a": committed()}, T0 + timedelta(seconds=10))
    assert r.waves[0].state == "soaking"
    r = advance(r, {"a": committed()}, T0 + timedelta(seconds=11))
    assert [w.state for w in r.waves] == ["succeeded", "updating"] and r.wants_new() == {"a", "b", "c"}
    reports = {d: committed() for d in "abc"}
    r = advance(r, reports, T0 + timedelta(seconds=12))
    r = advance(r, reports, T0 + timedelta(seconds=22))
    assert r.state == "completed" and all(d.state == "committed" for d in r.devices)


def test_a_rolled_back_device_halts_beyond_the_budget() -> None:
    r = advance(_rollout([["a"], ["b", "c", "d"]]), {}, T0)  # type: ignore[arg-type]
    bad = DeviceReport(serving_version=1, target_version=2, state="rolled_back", reason="HEALTH_ERROR/GOLDEN_MISMATCH")
    r = advance(r, {"a": bad}, T0)
    assert r.state == "halted" and r.waves[0].state == "failed" and r.waves[1].state == "pending"
    assert r.device("a").reason == "ROLLED_BACK/HEALTH_ERROR/GOLDEN_MISMATCH" and "a (ROLLED_BACK" in r.reason
    assert advance(r, {"a": bad}, T0 + timedelta(seconds=60)).wants_new() == {"a"}  # nothing new starts


def test_budget_allows_some_failures() -> None:
    r = advance(_rollout([["a", "b"], ["c"]], max_failures="1", soak_seconds=0), {}, T0)  # type: ignore[arg-type]
    bad = DeviceReport(serving_version=1, target_version=2, state="failed", reason="X")
    r = advance(r, {"a": bad}, T0)
    assert r.state == "running" and r.waves[0].state == "updating"  # b has not committed yet
    r = advance(r, {"a": bad, "b": committed()}, T0 + timedelta(seconds=1))
    assert r.state == "running" and [w.state for w in r.waves] == ["succeeded", "updating"]  # a is tolerated
    r = advance(r, {"a": bad, "b": committed(), "c": committed()}, T0 + timedelta(seconds=2))
    assert r.state == "completed" and r.reason == "1 device(s) failed within --max-failures 1: a"


def test_a_device_that_never_commits_times_out() -> None:
    r = advance(_rollout([["a", "b"], ["c"]], device_timeout_seconds=600), {}, T0)  # type: ignore[arg-type]
    locked = DeviceReport(serving_version=1, target_version=2, state="deferred", reason="LOCKED")
    r = advance(r, {"a": committed(), "b": locked}, T0 + timedelta(seconds=599))
    assert r.state == "running" and r.device("b").state == "deferred"  # not yet: a lock may be held a while
    r = advance(r, {"a": committed(), "b": locked}, T0 + timedelta(seconds=600))  # its last report: deferred
    assert r.device("b").state == "failed" and r.device("b").reason == "TIMEOUT/DEFERRED/LOCKED"
    assert r.state == "halted" and "b (TIMEOUT/DEFERRED/LOCKED)" in (r.reason or "")
    assert r.device("a").state == "committed" and r.waves[1].state == "pending"
    silent = advance(_rollout([["a"]], device_timeout_seconds=60), {}, T0)  # type: ignore[arg-type]
    silent = advance(silent, {}, T0 + timedelta(seconds=61))  # no heartbeat at all since the wave started
    assert silent.device("a").reason == "TIMEOUT/UPDATING" and silent.state == "halted"


def test_a_broken_gate_during_the_soak_halts() -> None:
    r = advance(_rollout([["a"], ["b"]], gates=["p99_ms<50", "error_ratio<0.01"]), {}, T0)  # type: ignore[arg-type]
    r = advance(r, {"a": committed(p99_ms=5.0)}, T0 + timedelta(seconds=1))
    assert r.waves[0].state == "soaking"
    r = advance(r, {"a": committed(p99_ms=80.0, error_ratio=0.0)}, T0 + timedelta(seconds=5))
    assert r.state == "halted" and r.device("a").reason == "GATE/p99_ms=80"
    assert r.device("a").gates == {"p99_ms": 80.0, "error_ratio": 0.0}


def test_deferred_by_a_lock_then_pause_resume_abort() -> None:
    r = advance(_rollout([["a"], ["b"]]), {}, T0)  # type: ignore[arg-type]
    r = advance(r, {"a": DeviceReport(serving_version=1, target_version=2, state="deferred", reason="LOCKED")}, T0)
    assert (r.device("a").state, r.device("a").reason, r.state) == ("deferred", "LOCKED", "running")
    r = pause(r, T0)
    r = advance(r, {"a": committed()}, T0 + timedelta(seconds=60))
    assert r.state == "paused" and r.waves[1].state == "pending" and r.device("a").state == "committed"
    with pytest.raises(ConflictError, match="cannot resume"):
        resume(resume(r, T0), T0)
    r = abort(r, T0)
    assert r.state == "aborted" and r.wants_new() == set() and r.device("a").state == "reverting"
    r = advance(r, {"a": DeviceReport(serving_version=1, state="committed")}, T0)
    assert r.device("a").state == "reverted" and r.device("b").state == "pending"
    with pytest.raises(ConflictError, match="rollout 0 is aborted"):
        abort(r, T0)

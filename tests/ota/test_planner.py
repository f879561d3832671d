"""The pure planner: state in, steps out (single passes and multi-phase sequences)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from jetfleet.agent.ota import states
from jetfleet.agent.ota.observed import InstalledVersion, Instance, Observed, PartialDownload, Route
from jetfleet.agent.ota.plan import PlanContext, plan
from jetfleet.agent.ota.records import Failure, ModelRecord
from jetfleet.agent.ota.steps import (
    Commit,
    Download,
    Fail,
    Forget,
    HealthCheck,
    Notify,
    RemovePartial,
    RemoveVersion,
    StartCandidate,
    StopInstance,
    StopOld,
    Switch,
    Unroute,
    Verify,
)
from jetfleet.manifest import DesiredModel

MB = 1 << 20
CTX = PlanContext(now=1000.0, headroom_bytes=10 * MB)


def model(version: int, name: str = "det", size: int = 50 * MB, framework: str = "onnx",
          generation: int = 1) -> DesiredModel:
    return DesiredModel(name=name, version=version, tag="prod", sha256=f"{version:064x}", size_bytes=size,
                        framework=framework, filename="model.onnx", generation=generation)  # type: ignore[arg-type]


def installed(*versions: int, name: str = "det", size: int = 50 * MB) -> dict[str, dict[int, InstalledVersion]]:
    return {name: {v: InstalledVersion(v, f"{v:064x}", size) for v in versions}}


def serving(version: int, port: int = 18101, name: str = "det") -> dict[str, object]:
    return {"routes": {name: Route(version, port)},
            "instances": (Instance(name, version, port, True, f"id{version}"),)}


def kinds(steps: Sequence[object]) -> list[str]:
    return [type(s).__name__ for s in steps]


def test_fresh_device_downloads_verifies_and_activates() -> None:
    steps = plan([model(1)], Observed(free_bytes=10**12), {}, CTX)
    assert steps == [Download("det", model(1)), Verify("det", model(1)), StartCandidate("det", 1),
                     HealthCheck("det", 1), Switch("det", 1), Commit("det", 1, replaced=None), StopOld("det")]


def test_swap_continues_from_what_is_observed_after_each_phase() -> None:
    base = Observed(installed=installed(1), free_bytes=10**12, **serving(1))  # type: ignore[arg-type]
    records = {"det": ModelRecord("det", states.COMMITTED, target_version=1)}
    assert kinds(plan([model(2)], base, records, CTX)) == [
        "Download", "Verify", "StartCandidate", "HealthCheck", "Switch", "Commit", "StopOld"]
    assert plan([model(2)], base, records, CTX)[5] == Commit("det", 2, replaced=1)
    # a download was interrupted (agent killed): resume from the bytes on disk
    partial = replace(base, downloads=(PartialDownload("det", 2, f"{2:064x}", 20 * MB, 50 * MB),))
    assert plan([model(2)], partial, records, CTX)[0] == Download("det", model(2), resume_from=20 * MB)
    # downloaded but not installed yet
    complete = replace(base, downloads=(PartialDownload("det", 2, f"{2:064x}", 50 * MB, 50 * MB),))
    assert kinds(plan([model(2)], complete, records, CTX))[:2] == ["Verify", "StartCandidate"]
    # installed: activate
    staged = replace(base, installed=installed(1, 2))
    assert kinds(plan([model(2)], staged, records, CTX)) == [
        "StartCandidate", "HealthCheck", "Switch", "Commit", "StopOld"]
    # the candidate already runs (the agent restarted mid-swap): check it, do not start another
    candidate = replace(staged, instances=(*staged.instances, Instance("det", 2, 18102, True, "id2")))
    assert kinds(plan([model(2)], candidate, records, CTX)) == ["HealthCheck", "Switch", "Commit", "StopOld"]
    # switched and committed: stop the old instance, nothing else
    switched = replace(candidate, routes={"det": Route(2, 18102)})
    committed = {"det": ModelRecord("det", states.COMMITTED, target_version=2, last_known_good=1)}
    assert plan([model(2)], switched, committed, CTX) == [StopInstance("det", 1, "id1")]
    done = replace(switched, instances=(Instance("det", 2, 18102, True, "id2"),))
    assert plan([model(2)], done, committed, CTX) == []


def test_converged_after_restart_reports_committed_once() -> None:
    observed = Observed(installed=installed(3), free_bytes=10**12, **serving(3))  # type: ignore[arg-type]
    assert plan([model(3)], observed, {}, CTX) == [Commit("det", 3)]


def test_cleanup_keeps_latest_three_and_never_serving_or_last_known_good() -> None:
    observed = Observed(installed=installed(1, 2, 3, 4, 5, 6), free_bytes=10**12, **serving(2))  # type: ignore[arg-type]
    record = {"det": ModelRecord("det", states.COMMITTED, target_version=2, last_known_good=1)}
    assert plan([model(2)], observed, record, CTX) == [RemoveVersion("det", 3)]


def test_disk_shortfall_cleans_up_first_or_fails_with_disk_space() -> None:
    observed = Observed(installed=installed(1, 2, 3), free_bytes=30 * MB, **serving(3))  # type: ignore[arg-type]
    records = {"det": ModelRecord("det", states.COMMITTED, target_version=3, last_known_good=2)}
    # 50 MB artifact + 10 MB headroom - 30 MB free = 30 MB short; version 1 (50 MB) is neither serving nor LKG
    assert plan([model(4)], observed, records, CTX)[:2] == [RemoveVersion("det", 1), Download("det", model(4))]
    tight = replace(observed, free_bytes=5 * MB)  # 55 MB short: deleting version 1 is not enough
    assert plan([model(4)], tight, records, CTX) == [Fail("det", model(4), states.DISK_SPACE, retry_after=60.0)]
    # a TensorRT engine needs room too
    trt = PlanContext(now=1000.0, headroom_bytes=0, tensorrt=True, engine_size_factor=1.0)
    assert kinds(plan([model(4)], replace(observed, free_bytes=60 * MB, installed={}), records, trt)) == ["Fail"]
    assert plan([model(4)], replace(observed, free_bytes=120 * MB, installed={}), records, trt)[2] == \
        StartCandidate("det", 4, convert=True)


def test_a_failed_version_is_not_retried_until_the_desired_entry_changes() -> None:
    observed = Observed(installed=installed(2, 3), free_bytes=10**12, **serving(2))  # type: ignore[arg-type]
    failure = Failure(3, f"{3:064x}", 1, states.GOLDEN_MISMATCH, retry_at=None)
    records = {"det": ModelRecord("det", states.ROLLED_BACK, states.GOLDEN_MISMATCH, 3, failure=failure)}
    assert plan([model(3)], observed, records, CTX) == []
    assert kinds(plan([model(3, generation=2)], observed, records, CTX))[0] == "StartCandidate"  # redeployed
    assert kinds(plan([model(4)], replace(observed, installed=installed(2, 3, 4)), records, CTX))[0] == \
        "StartCandidate"  # a newer version supersedes the failed one
    retry = {"det": replace(records["det"], failure=replace(failure, retry_at=1500.0))}
    assert plan([model(3)], observed, retry, CTX) == []
    assert kinds(plan([model(3)], observed, retry, replace(CTX, now=1600.0)))[0] == "StartCandidate"


def test_auto_update_off_reports_pending_and_applies_nothing() -> None:
    ctx = replace(CTX, auto_update=False)
    observed = Observed(installed=installed(1), free_bytes=10**12, **serving(1))  # type: ignore[arg-type]
    assert plan([model(2)], observed, {}, ctx) == [Notify("det", model(2))]
    notified = {"det": ModelRecord("det", states.NOTIFIED, target_version=2)}
    assert plan([model(2)], observed, notified, ctx) == []


def test_a_dead_serving_instance_is_healed() -> None:
    dead = Observed(installed=installed(1), free_bytes=10**12, routes={"det": Route(1, 18101)},
                    instances=(Instance("det", 1, 18101, False, "id1"),))
    record = {"det": ModelRecord("det", states.COMMITTED, target_version=1)}
    assert kinds(plan([model(1)], dead, record, CTX)) == [
        "StartCandidate", "HealthCheck", "Switch", "Commit", "StopOld"]
    # without a valid manifest the agent still heals what served, and changes nothing else
    gone = replace(dead, instances=())
    assert plan(None, gone, record, CTX) == [StartCandidate("det", 1, heal=True), HealthCheck("det", 1, heal=True),
                                            Switch("det", 1, heal=True)]
    backoff = {"det": replace(record["det"], backoff_until=2000.0)}
    assert plan(None, gone, backoff, CTX) == []
    assert plan(None, Observed(installed=installed(1), **serving(1)), record, CTX) == []  # type: ignore[arg-type]


def test_undeployed_model_is_unrouted_stopped_and_forgotten() -> None:
    observed = Observed(installed=installed(1), free_bytes=10**12, **serving(1))  # type: ignore[arg-type]
    record = {"det": ModelRecord("det", states.COMMITTED, target_version=1)}
    assert plan([], observed, record, CTX) == [Unroute("det"), StopInstance("det", 1, "id1"), Forget("det")]


def test_busy_models_get_no_steps_and_stale_partials_are_removed() -> None:
    partials = (PartialDownload("det", 2, f"{2:064x}", MB, 50 * MB), PartialDownload("old", 7, f"{7:064x}", MB, MB))
    observed = Observed(downloads=partials, free_bytes=10**12)
    assert plan([model(3)], replace(observed, busy=frozenset({"det"})), {}, CTX) == [
        RemovePartial("old", 7, f"{7:064x}")]
    assert kinds(plan([model(3)], observed, {}, CTX)) == [
        "Download", "Verify", "StartCandidate", "HealthCheck", "Switch", "Commit", "StopOld", "RemovePartial",
        "RemovePartial"]


def test_same_version_number_with_other_content_is_replaced() -> None:
    observed = Observed(installed={"det": {2: InstalledVersion(2, "f" * 64, MB)}}, free_bytes=10**12)
    assert plan([model(2)], observed, {}, CTX) == [RemoveVersion("det", 2)]
    routed = replace(observed, routes={"det": Route(2, 1)}, instances=(Instance("det", 2, 1, True, "x"),))
    assert kinds(plan([model(2)], routed, {}, CTX)) == ["Commit"]  # serving it: planner trusts the route


def test_two_models_are_planned_independently() -> None:
    observed = Observed(installed={**installed(1), **installed(5, name="seg")}, free_bytes=10**12,
                        routes={"det": Route(1, 1), "seg": Route(5, 2)},
                        instances=(Instance("det", 1, 1, True, "a"), Instance("seg", 5, 2, True, "b")))
    steps = plan([model(2), model(5, name="seg")], observed, {}, CTX)
    assert [(s.name, type(s).__name__) for s in steps][:2] == [("det", "Download"), ("det", "Verify")]
    assert ("seg", "Commit") in [(s.name, type(s).__name__) for s in steps]
    assert [s for s in steps if isinstance(s, Commit) and s.name == "det"] == [Commit("det", 2, replaced=1)]
    assert not [s for s in steps if isinstance(s, (Forget, Unroute))]


def test_a_model_whose_pipeline_just_failed_waits_unless_a_new_version_is_wanted() -> None:
    observed = Observed(installed=installed(1, 2), free_bytes=10**12, routes={"det": Route(1, 18101)},
                        instances=(Instance("det", 1, 18101, False, "id1"),))
    waiting = {"det": ModelRecord("det", states.ACTIVATING, target_version=2, backoff_until=1010.0)}
    assert plan([model(2)], observed, waiting, CTX) == []
    assert plan(None, observed, waiting, CTX) == []  # healing waits too
    assert kinds(plan([model(3)], replace(observed, installed=installed(1, 2, 3)), waiting, CTX))[0] == \
        "StartCandidate"
    assert kinds(plan([model(2)], observed, waiting, replace(CTX, now=1011.0)))[0] == "StartCandidate"

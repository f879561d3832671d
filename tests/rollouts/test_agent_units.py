"""The agent's side of rollouts, pure parts: the update lock in the planner, field signals from /metrics."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from jetfleet.agent.ota import states
from jetfleet.agent.ota.fieldstats import Counts, FieldStats, parse_counts, quantile, window_values
from jetfleet.agent.ota.observed import Observed
from jetfleet.agent.ota.plan import plan
from jetfleet.agent.ota.records import ModelRecord
from jetfleet.agent.ota.steps import Defer, Download, Verify
from jetfleet.updatelock import hold, is_held
from tests.ota.test_planner import CTX, installed, kinds, model, serving
from tests.support.system import unavailable

LOCKED = replace(CTX, update_locked=True)


def test_a_held_lock_stages_but_does_not_switch() -> None:
    fresh = Observed(free_bytes=10**12, installed=installed(1), **serving(1))  # type: ignore[arg-type]
    assert plan([model(2)], fresh, {}, LOCKED) == [Download("det", model(2)), Verify("det", model(2)),
                                                   Defer("det", model(2), states.LOCKED)]
    staged = replace(fresh, installed=installed(1, 2))
    assert plan([model(2)], staged, {}, LOCKED) == [Defer("det", model(2), states.LOCKED)]
    record = {"det": ModelRecord("det", state=states.DEFERRED, reason=states.LOCKED, target_version=2)}
    assert plan([model(2)], staged, record, LOCKED) == []  # reported once
    overdue = plan([model(2)], staged, record, replace(LOCKED, lock_overdue=True))
    assert overdue == [Defer("det", model(2), states.LOCKED_OVERDUE)]
    assert kinds(plan([model(2)], staged, record, CTX)) == ["StartCandidate", "HealthCheck", "Switch", "Commit",
                                                            "StopOld"]  # released: the swap goes on


def test_a_first_install_is_no_swap_and_ignores_the_lock() -> None:
    steps = plan([model(1)], Observed(free_bytes=10**12), {}, LOCKED)
    assert "Switch" in kinds(steps) and "Defer" not in kinds(steps)


def test_the_lock_file_is_seen_held_only_while_another_process_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "update.lock"
    assert not is_held(path)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], "
                               "os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_SH); print('held', flush=True); "
                               "sys.stdin.read()", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert is_held(path)
    finally:
        holder.communicate("", timeout=10)
    assert not is_held(path)
    with hold(path), hold(path):  # holders share the lock
        assert is_held(path)
    assert not is_held(path)


def test_another_user_holds_the_lock_file_someone_else_created() -> None:
    """A robot task of any user (or the voice container's) holds the lock in /run/lock, whoever made the file."""
    if os.geteuid() != 0:
        unavailable("acting as another user (nobody) needs root")
    directory = Path(tempfile.mkdtemp(prefix="jf-run-lock-"))
    try:
        directory.chmod(0o1777)  # as /run/lock is
        path = directory / "jetson-client.update.lock"
        with hold(path):
            pass
        path.chmod(0o644)  # root's file, read-only for the others
        (child, release), held = _hold_as_nobody(path)
        try:
            assert held, "nobody could not take the lock"
            assert is_held(path)
        finally:
            with contextlib.suppress(BrokenPipeError):
                os.write(release, b"x")  # let it go
            os.close(release)
            _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not is_held(path)
    finally:
        shutil.rmtree(directory)


def _hold_as_nobody(path: Path) -> tuple[tuple[int, int], bool]:
    """Fork a child that becomes nobody and holds the lock until told; (child pid, release fd), held."""
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, only os calls and hold()
        code = 1
        try:
            os.close(ready_r)
            os.setgid(65534)
            os.setuid(65534)
            with hold(path):
                os.write(ready_w, b"held")
                os.read(release_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(release_r)
    held = os.read(ready_r, 4) == b"held"  # b"" when the child exits without the lock
    os.close(ready_r)
    return (pid, release_w), held


METRICS = """\
# TYPE jetfleet_model_inference_requests counter
jetfleet_model_inference_requests_total{{model="m",version="1"}} {requests}
# TYPE jetfleet_model_inference_errors counter
jetfleet_model_inference_errors_total{{model="m",version="1",status="500"}} {errors}
# TYPE jetfleet_model_inference_duration_seconds histogram
jetfleet_model_inference_duration_seconds_bucket{{model="m",version="1",le="0.001"}} {fast}
jetfleet_model_inference_duration_seconds_bucket{{model="m",version="1",le="0.01"}} {ok}
jetfleet_model_inference_duration_seconds_bucket{{model="m",version="1",le="+Inf"}} {ok}
jetfleet_model_inference_duration_seconds_count{{model="m",version="1"}} {ok}
jetfleet_model_inference_duration_seconds_sum{{model="m",version="1"}} 0.1
"""


def test_field_signals_over_the_window() -> None:
    old = parse_counts(METRICS.format(requests=10, errors=0, fast=10, ok=10))
    new = parse_counts(METRICS.format(requests=110, errors=5, fast=10, ok=105))
    assert new.requests == 110 and new.errors == 5 and new.buckets[-1] == (float("inf"), 105)
    values = window_values(old, new)
    assert values["error_ratio"] == 0.05
    assert 1.0 < values["p50_ms"] < 10.0 and values["p99_ms"] <= 10.0  # type: ignore[operator]
    assert window_values(new, new) == {"error_ratio": None, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    assert abs(quantile(0.5, [(0.001, 0.0), (0.01, 10.0), (float("inf"), 10.0)]) - 0.0055) < 1e-12  # type: ignore[operator]
    stats = FieldStats(window=5, min_interval=1)
    assert stats.values("m", 1) == {} and stats.due("m", 1, now=0)
    for second, requests in enumerate((0, 10, 20, 30, 40, 50, 60, 70)):
        stats.add("m", 1, Counts(requests=requests, errors=requests / 10, buckets=((float("inf"), requests),)),
                  now=float(second))
    assert not stats.due("m", 1, now=7.5)
    assert stats.values("m", 1)["error_ratio"] == 0.1
    stats.keep_only(set())
    assert stats.values("m", 1) == {}


def test_the_voice_service_holds_the_lock_while_a_robot_command_runs(tmp_path: Path) -> None:
    import asyncio
    from concurrent.futures import Future

    from jetfleet.voice.grammar import Action
    from jetfleet.voice.metrics import VoiceMetrics
    from jetfleet.voice.pipeline import VoiceService
    from jetfleet.voice.robot.base import RobotDriver, RobotResult
    from jetfleet.voice.settings import RobotSettings, VoiceSettings
    from jetfleet.voice.stt.loader import SttPlan

    lock = tmp_path / "update.lock"
    seen: list[bool] = []

    class Observing(RobotDriver):
        name = "observing"

        @property
        def connected(self) -> bool:
            return True

        def start(self) -> None: ...

        def close(self) -> None: ...

        def submit(self, action: Action) -> Future[RobotResult]:
            seen.append(is_held(lock))
            future: Future[RobotResult] = Future()
            future.set_result(RobotResult(True, 0, "ok"))
            return future

    settings = VoiceSettings(node_name="n", robot=RobotSettings(kind="none", update_lock=lock))
    plan = SttPlan(backend="faster-whisper", model_name="base", model_path=tmp_path, source="test", device="cpu",
                   compute_type="int8", cpu_threads=1, workers=1)  # type: ignore[arg-type]
    service = VoiceService(settings, plan, Observing(), VoiceMetrics())
    result = asyncio.run(service._run_robot(next(iter(Action))))
    assert result.executed and seen == [True] and not is_held(lock)

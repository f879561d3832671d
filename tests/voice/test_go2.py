"""The Go2 driver for real: the voice server (``--robot go2 --network-interface lo``) sends real DDS
requests through the Unitree SDK to a fake Go2 sport service built on the SDK's own RPC server."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, managed, subprocess_env, wait_until

from .conftest import DDS_DOMAIN, START_TIMEOUT, VoiceServer, serve_cmd

pytest.importorskip("unitree_sdk2py", reason="the Go2 SDK is installed by scripts/bootstrap.sh")

FAKE = REPO_ROOT / "tests" / "voice" / "fake_go2_sport.py"


@dataclass
class FakeGo2:
    log: Path
    run_dir: Path
    process: ManagedProcess | None = None

    def start(self) -> None:
        argv = [sys.executable, "-u", str(FAKE), "lo", "--domain", str(DDS_DOMAIN), "--log", str(self.log),
                "--fail", "HELLO=4206"]
        self.process = ManagedProcess(argv, self.run_dir / "fake-go2.log", env=subprocess_env())
        wait_until(lambda: "ready" in self._output(), 30, what="fake Go2 ready")

    def _output(self) -> str:
        assert self.process is not None
        if not self.process.alive():
            raise AssertionError(f"fake Go2 exited:\n{self.process.output()}")
        return self.process.output()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def calls_after(self, mark: int, settle_s: float = 0.0) -> list[dict[str, Any]]:
        time.sleep(settle_s)
        return self.calls()[mark:]


@pytest.fixture(scope="module")
def fake_go2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGo2]:
    run_dir = tmp_path_factory.mktemp("go2")
    fake = FakeGo2(run_dir / "calls.jsonl", run_dir)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def go2_server(fake_go2: FakeGo2, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    port = free_port()
    argv = serve_cmd(port, "--network-interface", "lo", "--dds-domain", str(DDS_DOMAIN), "--robot-timeout", "1",
                     "--motion-seconds", "1", "--language", "nl-NL", robot="go2", node="go2-node")
    log = tmp_path_factory.mktemp("go2-server") / "server.log"
    with managed(argv, log, ready_url=f"http://127.0.0.1:{port}/health", timeout=START_TIMEOUT) as proc:
        yield VoiceServer(f"http://127.0.0.1:{port}", proc)


def say(server: VoiceServer, text: str) -> dict[str, Any]:
    reply = httpx.post(f"{server.url}/api/voice/listen", json={"command": text}, timeout=30)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def apis(calls: list[dict[str, Any]]) -> list[str]:
    return [c["api"] for c in calls]


def test_health_says_the_robot_is_connected(go2_server: VoiceServer) -> None:
    health = httpx.get(f"{go2_server.url}/health").json()
    assert health["robot"] == "go2" and health["robot_connected"] is True


def test_posture_commands_reach_the_robot(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    mark = len(fake_go2.calls())
    replies = [say(go2_server, text) for text in ("sta op", "ga zitten", "stand up", "ga liggen", "rek uit")]
    assert all(r["status"] == "ok" and r["robot"] == {"executed": True, "code": 0, "message": r["robot"]["message"]}
               for r in replies), replies
    # up from sitting is RiseSit; otherwise RecoveryStand (balance stand)
    assert apis(fake_go2.calls_after(mark)) == ["RECOVERYSTAND", "SIT", "RISESIT", "STANDDOWN", "STRETCH"]


def test_robot_error_codes_are_reported(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    reply = say(go2_server, "zwaai")  # the fake answers Hello with 4206
    assert reply["status"] == "error" and reply["command"]["action"] == "hello"
    assert reply["robot"]["executed"] is False and reply["robot"]["code"] == 4206
    assert "posture" in reply["robot"]["message"]
    assert fake_go2.calls()[-1]["api"] == "HELLO" and fake_go2.calls()[-1]["code"] == 4206


def test_walking_resends_move_at_10_hz_for_a_bounded_time_then_stops(go2_server: VoiceServer,
                                                                      fake_go2: FakeGo2) -> None:
    mark = len(fake_go2.calls())
    reply = say(go2_server, "loop vooruit")
    assert reply["status"] == "ok" and reply["robot"]["code"] == 0 and "Move(0.3, 0, 0)" in reply["robot"]["message"]
    calls = fake_go2.calls_after(mark, settle_s=1.6)
    moves = [c for c in calls if c["api"] == "MOVE"]
    assert apis(calls) == ["MOVE"] * len(moves) + ["STOPMOVE"]
    assert 7 <= len(moves) <= 12  # 1 s at 10 Hz
    assert all(m["param"] == {"x": 0.3, "y": 0.0, "z": 0.0} for m in moves)
    span = moves[-1]["t"] - moves[0]["t"]
    assert 0.6 <= span <= 1.3
    assert calls[-1]["vel"] == [0.0, 0.0, 0.0]


def test_stop_preempts_a_running_motion(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    mark = len(fake_go2.calls())
    say(go2_server, "draai links")
    time.sleep(0.3)
    stopped_at = time.time()
    assert say(go2_server, "stop")["robot"]["code"] == 0
    calls = fake_go2.calls_after(mark, settle_s=0.5)
    moves = [c for c in calls if c["api"] == "MOVE"]
    assert 1 <= len(moves) <= 6 and all(m["param"]["z"] == 0.6 for m in moves)  # turning left: vyaw > 0
    first_stop = next(i for i, c in enumerate(calls) if c["api"] == "STOPMOVE")
    assert all(c["api"] == "STOPMOVE" for c in calls[first_stop:])  # no Move after the stop
    assert calls[first_stop]["t"] - stopped_at < 0.5


def test_emergency_stop_damps_before_anything_else(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    mark = len(fake_go2.calls())
    say(go2_server, "loop achteruit")
    time.sleep(0.25)
    reply = say(go2_server, "noodstop")
    assert reply["command"]["action"] == "emergency_stop" and reply["robot"]["code"] == 0
    calls = fake_go2.calls_after(mark, settle_s=0.3)
    after_moves = [c["api"] for c in calls if c["api"] != "MOVE"]
    assert after_moves[0] == "DAMP" and calls[-1]["posture"] == "damp"
    assert all(c["param"]["x"] == -0.3 for c in calls if c["api"] == "MOVE")


def test_spoken_command_reaches_the_robot(go2_server: VoiceServer, fake_go2: FakeGo2,
                                          clip: Callable[..., Path]) -> None:
    mark = len(fake_go2.calls())
    reply = httpx.post(f"{go2_server.url}/api/voice/listen", files={"audio": ("c.wav", clip("ga liggen", "nl")
                                                                               .read_bytes())}, timeout=120).json()
    assert reply["command"]["action"] == "lie_down" and reply["robot"]["code"] == 0
    assert apis(fake_go2.calls_after(mark)) == ["STANDDOWN"]


def test_robot_calls_are_in_the_metrics(go2_server: VoiceServer) -> None:
    text = httpx.get(f"{go2_server.url}/metrics").text
    assert 'jetfleet_voice_robot_calls_total{code="0",method="Move"}' in text
    assert 'jetfleet_voice_robot_calls_total{code="4206",method="Hello"}' in text
    assert "jetfleet_voice_robot_connected 1.0" in text


def test_a_robot_that_goes_away_is_reported_and_found_again(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    fake_go2.stop()
    gone = say(go2_server, "sta op")
    assert gone["status"] == "error" and gone["robot"]["code"] in (3102, 3104), gone
    assert "robot" in gone["robot"]["message"]
    assert httpx.get(f"{go2_server.url}/health").json()["robot_connected"] is False
    fake_go2.start()
    back = wait_until(lambda: (r := say(go2_server, "sta op"))["robot"]["code"] == 0 and r, 20,
                      interval=0.5, what="the robot answering again")
    assert back and httpx.get(f"{go2_server.url}/health").json()["robot_connected"] is True


def test_shutdown_stops_a_running_motion(go2_server: VoiceServer, fake_go2: FakeGo2) -> None:
    """Runs last: it stops the module's server (SIGTERM, as systemd or docker would)."""
    mark = len(fake_go2.calls())
    say(go2_server, "loop vooruit")
    time.sleep(0.3)
    go2_server.process.stop()
    calls = fake_go2.calls_after(mark, settle_s=0.3)
    assert apis(calls)[0] == "MOVE" and apis(calls)[-1] == "STOPMOVE"
    assert sum(c["api"] == "MOVE" for c in calls) <= 6  # cut short, not the full second
    assert "Finished server process" in go2_server.process.log_path.read_text()

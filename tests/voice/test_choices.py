"""Pure decisions: backend and device choice, whisper_trt names, robot action plans and velocity limits,
settings validation, and the admission gate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from jetfleet.errors import ConfigError
from jetfleet.voice.errors import ServerBusy
from jetfleet.voice.gate import AdmissionGate
from jetfleet.voice.grammar import Action
from jetfleet.voice.robot.dds import dds_version_problem
from jetfleet.voice.robot.sport_calls import clamp, plan_action
from jetfleet.voice.settings import LimitSettings, RobotSettings, SttSettings, whisper_language
from jetfleet.voice.stt.select import choose_backend, choose_device, trt_engine_filename, trt_model_name

ALL = {"has_whisper_trt": True, "has_trt_engine": True, "has_faster_whisper": True}


@pytest.mark.parametrize(("requested", "language", "facts", "expected"), [
    ("auto", "en", ALL, "whisper-trt"),
    ("auto", "nl", ALL, "faster-whisper"),  # upstream whisper_trt has English models only
    ("auto", "en", {**ALL, "has_trt_engine": False}, "faster-whisper"),
    ("auto", "en", {**ALL, "has_whisper_trt": False}, "faster-whisper"),
    ("faster-whisper", "en", ALL, "faster-whisper"),
    ("whisper-trt", "en", {**ALL, "has_trt_engine": False}, "whisper-trt"),  # then loading says how to build
])
def test_choose_backend(requested: str, language: str, facts: dict[str, bool], expected: str) -> None:
    assert choose_backend(requested, language=language, **facts) == expected


@pytest.mark.parametrize(("requested", "language", "facts", "flag_text"), [
    ("whisper-trt", "nl", ALL, "English models only"),
    ("whisper-trt", "en", {**ALL, "has_whisper_trt": False}, "does not import"),
    ("faster-whisper", "nl", {**ALL, "has_faster_whisper": False}, "pip install"),
    ("auto", "nl", {**ALL, "has_faster_whisper": False}, "no speech-to-text backend"),
])
def test_impossible_backend_choices_name_the_flag(requested: str, language: str, facts: dict[str, bool],
                                                  flag_text: str) -> None:
    with pytest.raises(ConfigError, match=flag_text) as err:
        choose_backend(requested, language=language, **facts)
    assert "--backend" in str(err.value)


def test_choose_device() -> None:
    assert choose_device("auto", cuda_devices=0) == ("cpu", "int8")
    assert choose_device("auto", cuda_devices=1) == ("cuda", "float16")
    assert choose_device("cpu", cuda_devices=1) == ("cpu", "int8")
    with pytest.raises(ConfigError, match="--device"):
        choose_device("cuda", cuda_devices=0)


def test_whisper_trt_names_and_english_only() -> None:
    assert trt_model_name("base", "en") == "base.en"
    assert trt_model_name("small.en", "en") == "small.en"
    assert trt_engine_filename("base.en") == "base_en_trt.pth"
    with pytest.raises(ConfigError, match="English only"):
        trt_model_name("base", "nl")
    with pytest.raises(ConfigError, match="no model 'medium'"):
        trt_model_name("medium", "en")


LIMITS = RobotSettings(walk_speed=0.3, turn_speed=0.6, motion_seconds=2.0, move_rate_hz=10.0)


@pytest.mark.parametrize(("action", "posture", "calls"), [
    (Action.STAND_UP, "lying", ["RecoveryStand()"]),
    (Action.STAND_UP, "sitting", ["RiseSit()"]),
    (Action.LIE_DOWN, "standing", ["StandDown()"]),
    (Action.SIT, "standing", ["Sit()"]),
    (Action.HELLO, "standing", ["Hello()"]),
    (Action.STRETCH, "standing", ["Stretch()"]),
    (Action.STOP, "standing", ["StopMove()"]),
    (Action.EMERGENCY_STOP, "standing", ["Damp()"]),
])
def test_posture_actions(action: Action, posture: str, calls: list[str]) -> None:
    plan = plan_action(action, posture=posture, limits=LIMITS)  # type: ignore[arg-type]
    assert [str(c) for c in plan.calls] == calls and plan.motion is None


@pytest.mark.parametrize(("action", "velocity"), [
    (Action.WALK_FORWARD, (0.3, 0.0, 0.0)), (Action.WALK_BACKWARD, (-0.3, 0.0, 0.0)),
    (Action.TURN_LEFT, (0.0, 0.0, 0.6)), (Action.TURN_RIGHT, (0.0, 0.0, -0.6)),
])
def test_motions_are_bounded_moves(action: Action, velocity: tuple[float, float, float]) -> None:
    plan = plan_action(action, posture="standing", limits=LIMITS)
    assert plan.calls == () and plan.motion is not None
    assert (plan.motion.vx, plan.motion.vy, plan.motion.vyaw) == velocity
    assert plan.motion.duration_s == 2.0 and plan.motion.rate_hz == 10.0


def test_velocities_are_clamped_well_inside_the_documented_ranges() -> None:
    assert clamp(5.0, 0.6) == 0.6 and clamp(-5.0, 0.6) == -0.6 and clamp(0.2, 0.6) == 0.2
    with pytest.raises(ConfigError, match="--walk-speed"):
        RobotSettings(walk_speed=2.0)
    with pytest.raises(ConfigError, match="--move-rate"):
        RobotSettings(move_rate_hz=50)
    with pytest.raises(ConfigError, match="--motion-seconds"):
        RobotSettings(motion_seconds=60)


@pytest.mark.parametrize(("tag", "code"), [("nl-NL", "nl"), ("NL", "nl"), ("en_US", "en"), ("en", "en")])
def test_language_tags(tag: str, code: str) -> None:
    assert whisper_language(tag) == code


def test_bad_settings_name_their_flag() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: whisper_language("de-DE"), "--language"),
        (lambda: SttSettings(backend="tensorflow"), "--backend"),  # type: ignore[arg-type]
        (lambda: SttSettings(workers=0), "--workers"),
        (lambda: RobotSettings(robot_ip="robot.local"), "--robot-ip"),
        (lambda: RobotSettings(kind="spot"), "--robot"),  # type: ignore[arg-type]
        (lambda: LimitSettings(max_queue=-1), "--max-queue"),
    ]
    for build, flag in cases:
        with pytest.raises(ConfigError, match=flag):
            build()


def test_cyclonedds_11_is_refused_on_a_robot_network_only() -> None:
    assert dds_version_problem("11.0.1", loopback=True, allowed=False) is None
    assert dds_version_problem("0.10.2", loopback=False, allowed=False) is None
    assert dds_version_problem("11.0.1", loopback=False, allowed=True) is None
    problem = dds_version_problem("11.0.1", loopback=False, allowed=False)
    assert problem is not None and "0.10.2" in problem
    missing = dds_version_problem(None, loopback=True, allowed=False)
    assert missing is not None and "pip install" in missing


def test_admission_gate_runs_workers_queues_the_bound_and_refuses_the_rest() -> None:
    async def scenario() -> tuple[tuple[int, int], list[str]]:
        gate = AdmissionGate(workers=1, max_queue=2)
        release = asyncio.Event()
        outcomes: list[str] = []

        async def job() -> None:
            try:
                async with gate.slot():
                    await release.wait()
                outcomes.append("done")
            except ServerBusy as busy:
                outcomes.append(f"busy retry={busy.delay}")

        tasks = [asyncio.create_task(job()) for _ in range(5)]
        for _ in range(20):
            await asyncio.sleep(0)
        state = (gate.in_flight, gate.waiting)
        release.set()
        await asyncio.gather(*tasks)
        assert (gate.in_flight, gate.waiting) == (0, 0)
        return state, outcomes

    (running, queued), outcomes = asyncio.run(scenario())
    assert (running, queued) == (1, 2)
    assert outcomes.count("done") == 3 and sum(o.startswith("busy") for o in outcomes) == 2

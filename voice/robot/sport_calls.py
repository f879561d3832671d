"""Pure mapping from an action to Go2 SportClient calls: no I/O, facts (posture, limits) as arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from jetfleet.voice.grammar import Action
from jetfleet.voice.settings import RobotSettings

Posture = Literal["unknown", "standing", "sitting", "lying", "damp"]


@dataclass(frozen=True)
class SdkCall:
    method: str
    args: tuple[float, ...] = ()

    def __str__(self) -> str:
        return f"{self.method}({', '.join(f'{a:g}' for a in self.args)})"


@dataclass(frozen=True)
class Motion:
    """Move(vx, vy, vyaw) re-sent at ``rate_hz`` for ``duration_s`` (the robot holds a Move for 1 s only),
    then StopMove."""

    vx: float
    vy: float
    vyaw: float
    duration_s: float
    rate_hz: float

    @property
    def call(self) -> SdkCall:
        return SdkCall("Move", (self.vx, self.vy, self.vyaw))

    def __str__(self) -> str:
        return f"{self.call} at {self.rate_hz:g} Hz for {self.duration_s:g} s, then StopMove()"


@dataclass(frozen=True)
class ActionPlan:
    calls: tuple[SdkCall, ...] = ()
    motion: Motion | None = None
    posture_after: Posture | None = None

    def __str__(self) -> str:
        parts = [str(c) for c in self.calls] + ([str(self.motion)] if self.motion else [])
        return ", ".join(parts)


def clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


def _motion(vx: float, vyaw: float, limits: RobotSettings) -> Motion:
    return Motion(vx=clamp(vx, limits.max_speed), vy=0.0, vyaw=clamp(vyaw, limits.max_turn_speed),
                  duration_s=limits.motion_seconds, rate_hz=limits.move_rate_hz)


def plan_action(action: Action, *, posture: Posture, limits: RobotSettings) -> ActionPlan:
    """The SDK calls for ``action``. A positive vyaw turns left (body frame: x forward, y left, z up)."""
    if action is Action.STAND_UP:
        # RiseSit is the way up from Sit; RecoveryStand ends in balance stand from lying or fallen.
        call = SdkCall("RiseSit") if posture == "sitting" else SdkCall("RecoveryStand")
        return ActionPlan((call,), posture_after="standing")
    simple: dict[Action, tuple[str, Posture | None]] = {
        Action.LIE_DOWN: ("StandDown", "lying"),
        Action.SIT: ("Sit", "sitting"),
        Action.HELLO: ("Hello", None),
        Action.STRETCH: ("Stretch", None),
        Action.STOP: ("StopMove", None),
        Action.EMERGENCY_STOP: ("Damp", "damp"),
    }
    if action in simple:
        method, after = simple[action]
        return ActionPlan((SdkCall(method),), posture_after=after)
    speed, turn = limits.walk_speed, limits.turn_speed
    velocities = {
        Action.WALK_FORWARD: (speed, 0.0),
        Action.WALK_BACKWARD: (-speed, 0.0),
        Action.TURN_LEFT: (0.0, turn),
        Action.TURN_RIGHT: (0.0, -turn),
    }
    vx, vyaw = velocities[action]
    return ActionPlan(motion=_motion(vx, vyaw, limits))

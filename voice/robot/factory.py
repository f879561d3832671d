"""Build the robot driver named by ``--robot``."""

from __future__ import annotations

from jetfleet.voice.metrics import VoiceMetrics
from jetfleet.voice.robot.base import RobotDriver
from jetfleet.voice.robot.dry_run import DryRunDriver
from jetfleet.voice.settings import RobotSettings


def build_driver(settings: RobotSettings, metrics: VoiceMetrics) -> RobotDriver:
    if settings.kind == "go2":
        from jetfleet.voice.robot.go2 import Go2Driver

        return Go2Driver(settings, on_call=metrics.observe_robot_call)
    return DryRunDriver(settings)

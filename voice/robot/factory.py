"""Build the robot driver named by ``--robot``."""

from __future__ import annotations

from voice.metrics import VoiceMetrics
from voice.robot.base import RobotDriver
from voice.robot.dry_run import DryRunDriver
from voice.settings import RobotSettings


def build_driver(settings: RobotSettings, metrics: VoiceMetrics) -> RobotDriver:
    if settings.kind == "go2":
        from voice.robot.go2 import Go2Driver

        return Go2Driver(settings, on_call=metrics.observe_robot_call)
    return DryRunDriver(settings)

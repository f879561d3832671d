"""``--robot none``: a dry run that plans every action as the Go2 driver would and reports it."""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future

from jetfleet.voice.grammar import Action
from jetfleet.voice.robot.base import RobotDriver, RobotResult
from jetfleet.voice.robot.sport_calls import Posture, plan_action
from jetfleet.voice.settings import RobotSettings


class DryRunDriver(RobotDriver):
    name = "none"

    def __init__(self, settings: RobotSettings) -> None:
        self._settings = settings
        self._posture: Posture = "unknown"
        self._lock = threading.Lock()
        self.history: deque[tuple[Action, str]] = deque(maxlen=100)

    @property
    def connected(self) -> bool:
        return False

    def start(self) -> None:
        return None

    def submit(self, action: Action) -> Future[RobotResult]:
        with self._lock:
            plan = plan_action(action, posture=self._posture, limits=self._settings)
            self._posture = plan.posture_after or self._posture
            self.history.append((action, str(plan)))
        future: Future[RobotResult] = Future()
        future.set_result(RobotResult(executed=False, code=None,
                                      message=f"dry run (--robot none): would call {plan}"))
        return future

    def close(self) -> None:
        return None

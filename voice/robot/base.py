"""The robot driver interface and its result record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass

from jetfleet.voice.grammar import Action


@dataclass(frozen=True)
class RobotResult:
    """What happened to one command: ``executed`` only when the robot accepted it (code 0)."""

    executed: bool
    code: int | None
    message: str


class RobotDriver(ABC):
    """Executes actions one at a time off the event loop; ``submit`` never blocks."""

    name: str

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the robot answered recently."""

    @abstractmethod
    def start(self) -> None:
        """Connect (blocking, may take a second): call from a thread at start-up."""

    @abstractmethod
    def submit(self, action: Action) -> Future[RobotResult]:
        """Queue an action; stop/emergency_stop pre-empt everything else. The future resolves when the
        robot answered (for a motion: when the first Move was sent)."""

    @abstractmethod
    def close(self) -> None:
        """Stop any motion and the worker (blocking)."""

"""What every metrics source offers the collector."""

from __future__ import annotations

from typing import Protocol

from jetfleet.errors import TemporaryError

from .model import Reading


class SourceUnavailable(TemporaryError):
    """A source has nothing to report right now (no sample yet, process exited, files gone)."""


class Source(Protocol):
    name: str

    def start(self) -> None:
        """Start background work, if any (idempotent)."""

    def read(self) -> Reading:
        """The source's current values; raises when it has none (reported as collector status)."""

    def close(self) -> None:
        """Stop background work and release resources (idempotent)."""

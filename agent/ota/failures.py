"""How a step fails: a reason code for the control plane and when (if ever) to try again."""

from __future__ import annotations

from jetfleet.errors import JetfleetError


class StepFailure(JetfleetError):
    """A step could not complete.

    ``temporary``: keep the current state, retry with backoff (network down, 5xx).
    Otherwise the deployment ends ``failed``/``rolled_back`` with ``reason``; it is retried after
    ``retry_after`` seconds, or never (None) until the desired entry changes.
    """

    def __init__(self, reason: str, message: str, *, temporary: bool = False, retry_after: float | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.temporary = temporary
        self.retry_after = retry_after

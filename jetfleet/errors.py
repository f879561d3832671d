"""The error hierarchy shared by every jetfleet role.

::

    JetfleetError
    ├── TemporaryError(delay)      retrying later may succeed (network down, 5xx, daemon restarting)
    │   └── BackendUnavailable     the control plane cannot be reached or answered 5xx
    └── PermanentError             retrying the same thing is useless
        ├── ConfigError            a configuration file, flag or variable is wrong (names key and file)
        ├── AuthError              a token or key was refused
        ├── NotFoundError          the thing asked for does not exist
        └── ConflictError          the request clashes with existing state (e.g. a taken device id)

Third-party exceptions (httpx, docker, sqlalchemy, ...) are translated into these at the boundary
with ``raise X(...) from exc``; loops retry ``TemporaryError`` and report ``PermanentError``.
"""

from __future__ import annotations


class JetfleetError(Exception):
    """Base of every error jetfleet raises on purpose."""


class TemporaryError(JetfleetError):
    """A potentially recoverable error: retry after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(JetfleetError):
    """A fatal error for this operation: retrying will not help."""


class BackendUnavailable(TemporaryError):
    """The control plane could not be reached, timed out, or answered with a server error."""


class ConfigError(PermanentError):
    """A configuration value is missing or wrong. The message names the key and where it came from."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        where = " ".join(part for part in (f"key '{key}'" if key else "", f"in {source}" if source else "") if part)
        super().__init__(f"{where}: {message}" if where else message)
        self.key = key
        self.source = source


class AuthError(PermanentError):
    """A token, key or signature was refused."""


class NotFoundError(PermanentError):
    """The thing asked for does not exist."""


class ConflictError(PermanentError):
    """The request conflicts with existing state."""

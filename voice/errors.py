"""Errors of the voice service, as children of :mod:`jetfleet.errors`.

::

    PermanentError
    ├── ConfigError
    │   ├── ModelUnavailable      the Whisper model is missing, corrupt or not cached (never downloaded)
    │   └── RobotSdkMissing       ``--robot go2`` without the Unitree SDK installed
    ├── AudioError(status)        audio that cannot be used: undecodable/empty/silent (400), too long or big (413)
    └── VoiceRequestError         the voice server refused a request (client side: status + detail)
    TemporaryError
    ├── ServerBusy(delay)         the transcription queue is full (503 + Retry-After)
    ├── NotReady(delay)           the model is still loading or the robot still connecting (503)
    └── VoiceServerUnavailable    the voice server cannot be reached or is still loading (client side)
"""

from __future__ import annotations

from jetfleet.errors import ConfigError, PermanentError, TemporaryError


class ModelUnavailable(ConfigError):
    """The speech model cannot be used: not installed, corrupt, or not cached (jetfleet never downloads one)."""


class RobotSdkMissing(ConfigError):
    """``--robot go2`` was asked for but ``unitree_sdk2py`` (or ``cyclonedds``) does not import."""


class AudioError(PermanentError):
    """Audio that cannot be transcribed; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class VoiceRequestError(PermanentError):
    """The voice server answered a request with a client error (4xx)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServerBusy(TemporaryError):
    """Every transcription slot and queue place is taken; retry after ``delay`` seconds."""


class NotReady(TemporaryError):
    """The server is still starting: the model is loading or the robot driver connecting."""


class VoiceServerUnavailable(TemporaryError):
    """The voice server could not be reached, is still loading, or answered 5xx."""

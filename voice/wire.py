"""JSON shapes of the voice API, shared by the server and the client.

Requests refuse unknown fields and wrong types (422 naming the field); responses ignore extra fields so
that an older client keeps working against a newer server.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from jetfleet.errors import ConfigError
from jetfleet.voice.grammar import LANGUAGES
from jetfleet.voice.settings import language_pattern, whisper_language

Status = Literal["ok", "rejected", "error"]


GRAMMAR_LANGUAGE = language_pattern(list(LANGUAGES))


def language_code(value: str) -> str:
    """'nl-NL' -> 'nl' for a request field; ValueError (422) for anything the grammar does not know."""
    try:
        return whisper_language(value, flag="language")
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc


BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class ListenRequest(BaseModel):
    """Either a typed ``command`` (skips speech-to-text) or ``audio_base64`` (any format FFmpeg reads)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"oneOf": [
        {"required": ["command"], "properties": {"command": {"type": "string"}, "audio_base64": {"type": "null"}}},
        {"required": ["audio_base64"],
         "properties": {"audio_base64": {"type": "string"}, "command": {"type": "null"}}}]})

    command: Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")] | None = None
    # patterns for the schema only: the validators below enforce them with clearer messages
    audio_base64: Annotated[str, Field(min_length=1, json_schema_extra={"pattern": BASE64_PATTERN})] | None = None
    language: Annotated[str, Field(min_length=2, max_length=16,
                                   json_schema_extra={"pattern": GRAMMAR_LANGUAGE})] | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return None if value is None else language_code(value)

    @field_validator("audio_base64")
    @classmethod
    def _valid_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"is not valid base64: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ListenRequest:
        if (self.command is None) == (self.audio_base64 is None):
            raise ValueError("send exactly one of 'command' (text) or 'audio_base64' (audio)")
        if self.command is not None and not self.command.strip():
            raise ValueError("'command' is blank")
        return self

    def audio_bytes(self) -> bytes:
        return base64.b64decode(self.audio_base64 or "", validate=True)


class Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CommandOut(Reply):
    action: str
    phrase: str
    confidence: float


class RobotOut(Reply):
    executed: bool
    code: int | None
    message: str


class Timings(Reply):
    stt: float | None
    total: float


class ListenResponse(Reply):
    status: Status
    transcript: str
    command: CommandOut | None
    robot: RobotOut
    timings_ms: Timings
    node: str
    candidates: list[CommandOut] = Field(default_factory=list)


class HealthResponse(Reply):
    status: Literal["ok", "loading", "failed"]
    robot_connected: bool
    whisper_model: str
    backend: str
    language: str
    node: str
    robot: str = "none"
    device: str | None = None


class LatencyMs(Reply):
    p50: float | None
    p95: float | None


class StatusResponse(Reply):
    command_count: int
    in_flight: int
    queue_depth: int
    last_command: dict[str, Any] | None
    latency_ms: LatencyMs

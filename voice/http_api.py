"""The HTTP face of the voice service (FastAPI). Handlers only adapt requests to :class:`VoiceService`."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.exceptions import HTTPException as StarletteHTTPException

from jetfleet.errors import TemporaryError
from jetfleet.httpapi import ErrorBody, allowed_methods, errors, finish_contract
from jetfleet.voice.edge import EdgeMiddleware
from jetfleet.voice.errors import AudioError
from jetfleet.voice.pipeline import ListenResult, VoiceService
from jetfleet.voice.stt.base import Transcript
from jetfleet.voice.wire import (
    GRAMMAR_LANGUAGE,
    CommandOut,
    HealthResponse,
    LatencyMs,
    ListenRequest,
    ListenResponse,
    RobotOut,
    StatusResponse,
    Timings,
    language_code,
)

_LOG = logging.getLogger(__name__)

AUDIO_FIELDS = ("audio", "file")
ISO_LANGUAGE = r"^\s*[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*\s*$"
_LISTEN_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": ListenRequest.model_json_schema()},
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "audio": {"type": "string", "format": "binary", "description": "any format FFmpeg decodes"},
                "language": {"type": "string", "example": "nl", "pattern": GRAMMAR_LANGUAGE}},
                "required": ["audio"], "additionalProperties": False}},
        },
        "required": True,
    }
}


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Errors of the OpenAI-compatible routes (/v1/...), shaped like OpenAI's."""

    error: OpenAIError


_PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def _field_error(loc: tuple[str | int, ...], message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message, "input": None}])


async def _read_json(request: Request, kind: str) -> ListenRequest:
    body = await request.body()
    if not body.strip():
        raise _field_error(("body",), "the request body is empty: send JSON {\"command\": \"sta op\"} or"
                                      " {\"audio_base64\": \"...\"}, or multipart/form-data with an audio file",
                           "missing")
    if kind not in ("", "application/json") and not kind.endswith("+json"):
        raise HTTPException(415, f"unsupported content type '{kind}': use application/json or multipart/form-data")
    try:
        return ListenRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = [{"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"],
                   "input": None if isinstance(e.get("input"), bytes) or len(repr(e.get("input"))) > 200
                   else e.get("input")}
                  for e in exc.errors(include_url=False, include_context=False)]
        raise RequestValidationError(errors) from None


async def _read_multipart(request: Request) -> tuple[bytes, str | None]:
    async with request.form(max_files=1, max_fields=4) as form:
        audio: bytes | None = None
        language: str | None = None
        for name, value in form.multi_items():
            if name in AUDIO_FIELDS and isinstance(value, StarletteUpload):
                audio = await value.read()
            elif name == "language" and isinstance(value, str):
                try:
                    language = language_code(value)
                except ValueError as exc:
                    raise _field_error(("body", "language"), str(exc)) from None
            elif name in (*AUDIO_FIELDS, "language"):
                raise _field_error(("body", name), f"'{name}' has the wrong type (a file for audio, text for"
                                                   " language)", "type_error")
            else:
                raise _field_error(("body", name), f"unknown field '{name}' (expected 'audio' or 'file', and"
                                                   " 'language')", "extra_forbidden")
    if audio is None:
        raise _field_error(("body", "audio"), "an audio file is required (multipart field 'audio' or 'file')",
                           "missing")
    return audio, language


def _candidate(c: Any) -> CommandOut:
    return CommandOut(action=c.action.value, phrase=c.phrase, confidence=c.confidence)


def listen_response(result: ListenResult, node: str) -> ListenResponse:
    return ListenResponse(
        status=result.status, transcript=result.transcript,
        command=_candidate(result.command) if result.command else None,
        robot=RobotOut(executed=result.robot.executed, code=result.robot.code, message=result.robot.message),
        timings_ms=Timings(stt=result.stt_ms, total=result.total_ms), node=node,
        candidates=[_candidate(c) for c in result.candidates])


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _subtitles(transcript: Transcript, kind: str) -> str:
    """SubRip (srt) or WebVTT (vtt) cues, one per segment, as OpenAI's API writes them."""
    separator = "," if kind == "srt" else "."
    cues = [f"{_timestamp(s.start, separator)} --> {_timestamp(s.end, separator)}\n{s.text.strip()}\n"
            for s in transcript.segments]
    if kind == "srt":
        return "\n".join(f"{number}\n{cue}" for number, cue in enumerate(cues, start=1))
    return "WEBVTT\n\n" + "\n".join(cues)


def _openai_body(transcript: Transcript, response_format: str) -> Response:
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(_subtitles(transcript, response_format),
                                 media_type="text/vtt" if response_format == "vtt" else "application/x-subrip")
    if response_format == "json":
        return JSONResponse({"text": transcript.text})
    segments = [{"id": s.id, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
                 "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                 "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}
                for s in transcript.segments]
    return JSONResponse({"task": "transcribe", "language": transcript.language,
                         "duration": round(transcript.duration_s, 3), "text": transcript.text,
                         "segments": segments})


def _is_openai(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def _error(request: Request, status: int, message: str, param: str | None = None,
           headers: Mapping[str, str] | None = None, detail: Any = None) -> JSONResponse:
    if _is_openai(request):
        body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error"
                                          if status < 500 else "server_error", "param": param, "code": None}}
    else:
        body = {"detail": detail if detail is not None else message}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TemporaryError)
    async def _temporary(request: Request, exc: TemporaryError) -> JSONResponse:
        return _error(request, 503, str(exc), headers={"Retry-After": str(max(1, math.ceil(exc.delay)))})

    @app.exception_handler(AudioError)
    async def _audio(request: Request, exc: AudioError) -> JSONResponse:
        return _error(request, exc.status, str(exc), param="file" if _is_openai(request) else "audio")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(list(exc.errors()))
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"][1:]) or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return _error(request, 422, message, param=field, detail=errors)

    @app.exception_handler(StarletteHTTPException)  # also Starlette's own (a malformed multipart body: 400)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request.app, request.url.path)
        return _error(request, exc.status_code, str(exc.detail), headers=headers)


def create_app(service: VoiceService, *, on_fatal: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The voice server. The model loads in the background after start-up; /health says 503 until then."""
    settings = service.settings
    node = settings.node_name

    async def start() -> None:
        try:
            await service.start()
        except Exception as exc:
            service.failure = str(exc)
            _LOG.error("voice service failed to start: %s", exc)
            if on_fatal is not None:
                on_fatal(exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(start())
        try:
            yield
        finally:
            task.cancel()
            await service.close()

    app = FastAPI(title="jetfleet voice", version="1", lifespan=lifespan)
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.limits.max_upload_bytes, metrics=service.metrics)
    _install_error_handlers(app)

    @app.get("/health", response_model=HealthResponse,
             responses={503: {"model": HealthResponse, "description": "The model is loading, or failed to"}})
    async def health() -> JSONResponse:
        status: Literal["ok", "loading", "failed"] = (
            "ok" if service.ready else "failed" if service.failure else "loading")
        body = HealthResponse(status=status, robot_connected=service.driver.connected,
                              whisper_model=service.plan.model_name, backend=service.plan.backend,
                              language=settings.stt.language, node=node, robot=service.driver.name,
                              device=service.transcriber.device if service.transcriber else None)
        return JSONResponse(body.model_dump(), status_code=200 if status == "ok" else 503)

    @app.get("/api/voice/status", response_model=StatusResponse)
    async def status() -> StatusResponse:
        p50, p95 = service.stats.percentiles_ms()
        return StatusResponse(command_count=service.stats.command_count, in_flight=service.gate.in_flight,
                              queue_depth=service.gate.waiting, last_command=service.stats.last_command,
                              latency_ms=LatencyMs(p50=p50, p95=p95))

    @app.post("/api/voice/listen", response_model=ListenResponse, openapi_extra=_LISTEN_DOC,
              responses={**errors(413, 415, 503), 422: {"model": ErrorBody, "description": "Invalid request "
                                                                          "(``detail`` names the field)"}})
    async def listen(request: Request) -> ListenResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            audio, language = await _read_multipart(request)
            result = await service.listen_audio(audio, language)
        else:
            payload = await _read_json(request, kind)
            if payload.command is not None:
                result = await service.listen_text(payload.command)
            else:
                result = await service.listen_audio(payload.audio_bytes(), payload.language)
        return listen_response(result, node)

    @app.post("/v1/audio/transcriptions", responses={
        200: {"description": "The transcript in the requested response_format", "content": {
            "application/json": {}, "text/plain": {"schema": {"type": "string"}},
            "text/vtt": {"schema": {"type": "string"}}, "application/x-subrip": {"schema": {"type": "string"}}}},
        **errors(413, 415, 503, model=OpenAIErrorBody)})
    async def transcriptions(
        file: UploadFile = File(..., description="the audio, any format FFmpeg decodes"),
        model: str = Form("whisper-1", description="accepted for compatibility; this server's model is used"),
        language: str | None = Form(None, description="ISO-639-1, e.g. nl", pattern=ISO_LANGUAGE),
        prompt: str | None = Form(None, max_length=1000),
        response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = Form("json"),
        temperature: float = Form(0.0, ge=0.0, le=1.0),
    ) -> Response:
        code = language.strip().replace("_", "-").split("-")[0].lower() if language else None
        if code is not None and not re.fullmatch(r"[a-z]{2,3}", code):
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "language"), "input": language,
                                           "msg": "must be an ISO-639-1 language code such as 'nl' or 'en'"}])
        transcript = await service.transcribe(await file.read(), code, prompt, temperature)
        return _openai_body(transcript, response_format)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": service.plan.model_name, "object": "model", "created": 0,
                                             "owned_by": "jetfleet"}]}

    @app.get("/metrics", response_class=PlainTextResponse, responses=_PROMETHEUS_TEXT)
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    finish_contract(app, error_models={"/v1/": OpenAIErrorBody})
    return app

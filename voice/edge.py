"""ASGI middleware at the edge of the voice server: refuses oversized bodies before reading them whole
(413), and counts every answered request by endpoint and status code."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetfleet.voice.metrics import VoiceMetrics

KNOWN_ENDPOINTS = frozenset({"/health", "/api/voice/status", "/api/voice/listen", "/v1/audio/transcriptions",
                             "/v1/models", "/metrics"})


def _too_large(max_bytes: int, size: str) -> str:
    return f"the request body is {size}; the limit is {max_bytes} bytes (--max-upload-bytes)"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: VoiceMetrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in KNOWN_ENDPOINTS else "other"
        started = time.monotonic()
        status = {"code": 500}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if (declared := self._declared_length(scope)) is not None and declared > self.max_body_bytes:
                await self._refuse(send_counted, _too_large(self.max_body_bytes, f"{declared} bytes"),
                                   openai=scope["path"].startswith("/v1/"))
            else:
                await self.app(scope, self._limited(receive), send_counted)
        finally:
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.monotonic() - started)

    @staticmethod
    def _declared_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def _limited(self, receive: Receive) -> Receive:
        """Counts body bytes as they arrive (chunked uploads have no Content-Length) and stops at the limit."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the handler's body read; FastAPI answers it as a 413.
                    raise HTTPException(413, _too_large(self.max_body_bytes, f"over {self.max_body_bytes} bytes"))
            return message

        return receive_limited

    @staticmethod
    async def _refuse(send: Send, detail: str, *, openai: bool) -> None:
        body: dict[str, Any] = (
            {"error": {"message": detail, "type": "invalid_request_error", "param": "file", "code": None}}
            if openai else {"detail": detail})
        payload = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})

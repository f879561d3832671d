"""Python client of a Jetson's voice server.

    from jetfleet.voice.client import JetsonVoiceClient
    client = JetsonVoiceClient("http://jetson-1:8888")
    client.send_command("sta op")          # text: skips speech-to-text
    client.send_audio("sta_op.wav")         # any format FFmpeg decodes
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from jetfleet.voice.errors import VoiceRequestError, VoiceServerUnavailable
from jetfleet.voice.wire import HealthResponse, ListenResponse, StatusResponse

Model = TypeVar("Model", bound=BaseModel)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    detail = body.get("detail", body.get("error", body)) if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors: name the field
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
                         for e in detail if isinstance(e, dict))
    if isinstance(detail, dict) and "message" in detail:
        return str(detail["message"])
    return str(detail)


class JetsonVoiceClient:
    def __init__(self, jetson_url: str, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = jetson_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def __enter__(self) -> JetsonVoiceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send_command(self, text: str) -> ListenResponse:
        return self._call(ListenResponse, "POST", "/api/voice/listen", json={"command": text})

    def send_audio(self, path: str | Path, *, language: str | None = None) -> ListenResponse:
        path = Path(path)
        return self.send_audio_bytes(path.read_bytes(), filename=path.name, language=language)

    def send_audio_bytes(self, data: bytes, *, filename: str = "audio.wav",
                         language: str | None = None) -> ListenResponse:
        fields = {"language": language} if language else None
        return self._call(ListenResponse, "POST", "/api/voice/listen", files={"audio": (filename, data)},
                          data=fields)

    def health(self) -> HealthResponse:
        return self._call(HealthResponse, "GET", "/health")

    def status(self) -> StatusResponse:
        return self._call(StatusResponse, "GET", "/api/voice/status")

    def _call(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise VoiceServerUnavailable(f"voice server {self.base_url} cannot be reached: {exc}") from exc
        if response.status_code >= 500:
            retry = response.headers.get("retry-after", "")
            delay = float(retry) if retry.isdigit() else 5.0
            raise VoiceServerUnavailable(f"voice server {self.base_url} answered {response.status_code}:"
                                         f" {_detail(response)}", delay=max(1.0, math.ceil(delay)))
        if response.status_code >= 400:
            raise VoiceRequestError(f"voice server refused the request ({response.status_code}): {_detail(response)}",
                                    status=response.status_code)
        return model.model_validate(response.json())

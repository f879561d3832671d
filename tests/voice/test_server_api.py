"""The voice server over real HTTP (one shared server, Dutch, robot none): text commands for every phrase,
response shapes, health, status, metrics, and bad input that never reaches the robot."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jetfleet.voice.grammar import PHRASES, Action

from .audio_files import silence, tone
from .conftest import VoiceServer

EVERY_PHRASE = [(action, phrase) for action, table in PHRASES.items()
                for phrases in table.values() for phrase in phrases]
DRY_RUN_CALLS = {Action.STAND_UP: "RecoveryStand()", Action.LIE_DOWN: "StandDown()", Action.SIT: "Sit()",
                 Action.HELLO: "Hello()", Action.STRETCH: "Stretch()", Action.STOP: "StopMove()",
                 Action.EMERGENCY_STOP: "Damp()", Action.WALK_FORWARD: "Move(0.3, 0, 0)",
                 Action.WALK_BACKWARD: "Move(-0.3, 0, 0)", Action.TURN_LEFT: "Move(0, 0, 0.6)",
                 Action.TURN_RIGHT: "Move(0, 0, -0.6)"}


def listen(server: VoiceServer, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/voice/listen", timeout=60, **kwargs)


def command_count(server: VoiceServer) -> int:
    return int(httpx.get(f"{server.url}/api/voice/status").json()["command_count"])


def test_health_reports_model_backend_language_and_node(voice_server: VoiceServer) -> None:
    reply = httpx.get(f"{voice_server.url}/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok", "robot_connected": False, "whisper_model": "base",
                            "backend": "faster-whisper", "language": "nl", "node": "test-node", "robot": "none",
                            "device": "cpu/int8"}


@pytest.mark.parametrize(("action", "phrase"), EVERY_PHRASE)
def test_text_command_for_every_phrase(voice_server: VoiceServer, action: Action, phrase: str) -> None:
    reply = listen(voice_server, json={"command": phrase})
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok" and body["transcript"] == phrase and body["node"] == "test-node"
    assert body["command"] == {"action": action.value, "phrase": phrase, "confidence": 1.0}
    assert body["robot"]["executed"] is False and body["robot"]["code"] is None
    assert DRY_RUN_CALLS[action] in body["robot"]["message"]
    assert body["timings_ms"]["stt"] is None and body["timings_ms"]["total"] >= 0


def test_unknown_text_is_rejected_with_candidates(voice_server: VoiceServer) -> None:
    before = command_count(voice_server)
    body = listen(voice_server, json={"command": "light down"}).json()
    assert body["status"] == "rejected" and body["command"] is None
    assert {c["action"] for c in body["candidates"]} >= {"lie_down", "sit"}
    assert body["robot"]["executed"] is False and "ambiguous" in body["robot"]["message"]
    assert command_count(voice_server) == before + 1


def test_status_counts_commands_and_reports_the_last_one(voice_server: VoiceServer) -> None:
    before = command_count(voice_server)
    listen(voice_server, json={"command": "Loop vooruit!"})
    status = httpx.get(f"{voice_server.url}/api/voice/status").json()
    assert status["command_count"] == before + 1
    assert status["in_flight"] == 0 and status["queue_depth"] == 0
    assert status["last_command"]["action"] == "walk_forward" and status["last_command"]["status"] == "ok"
    assert status["latency_ms"]["p50"] is not None and status["latency_ms"]["p95"] >= status["latency_ms"]["p50"]


def test_metrics_have_units_and_count_commands(voice_server: VoiceServer) -> None:
    listen(voice_server, json={"command": "ga zitten"})
    text = httpx.get(f"{voice_server.url}/metrics").text
    assert 'jetfleet_voice_commands_total{action="sit",status="ok"}' in text
    assert 'jetfleet_voice_requests_total{code="200",endpoint="/api/voice/listen"}' in text
    assert "jetfleet_voice_request_duration_seconds_bucket" in text
    assert "jetfleet_voice_stt_duration_seconds_count" in text
    assert "jetfleet_voice_queued_requests 0.0" in text and "jetfleet_voice_model_loaded 1.0" in text
    assert 'jetfleet_voice_model_info{backend="faster-whisper"' in text


BAD_JSON = [
    (b"", "body", "empty"),
    (b"{}", "body", "exactly one"),
    (b'{"command": 5}', "body.command", "valid string"),
    (b'{"command": "sta op", "speed": 3}', "body.speed", "Extra inputs"),
    (b'{"command": "sta op", "audio_base64": "AAAA"}', "body", "exactly one"),
    (b'{"command": ""}', "body.command", "at least 1"),
    (b'{"audio_base64": "not base64 !!"}', "body.audio_base64", "base64"),
    (b'{"audio_base64": "AAAA", "language": "de"}', "body.language", "not supported"),
    (b'["sta op"]', "body", "an object"),
    (b'{"command": "sta op"', "body", "JSON"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_JSON)
def test_bad_json_is_422_naming_the_field(voice_server: VoiceServer, body: bytes, field: str, message: str) -> None:
    before = command_count(voice_server)
    reply = listen(voice_server, content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    errors = reply.json()["detail"]
    assert any(".".join(map(str, e["loc"])) == field and message in e["msg"] for e in errors), errors
    assert command_count(voice_server) == before  # nothing reached the grammar or the robot


@pytest.mark.parametrize(("files", "data", "field"), [
    ({"audio": ("a.wav", tone(1.0))}, {"speed": "3"}, "body.speed"),
    (None, {"language": "nl"}, "body.audio"),
    ({"audio": ("a.wav", tone(1.0))}, {"language": "klingon"}, "body.language"),
])
def test_bad_multipart_is_422_naming_the_field(voice_server: VoiceServer, files: Any, data: Any, field: str) -> None:
    if files is None:  # a multipart body without any file
        reply = listen(voice_server, files={"language": (None, "nl")})
    else:
        reply = listen(voice_server, files=files, data=data)
    assert reply.status_code == 422, reply.text
    assert field in [".".join(map(str, e["loc"])) for e in reply.json()["detail"]]


@pytest.mark.parametrize(("audio", "status", "message"), [
    (b"", 400, "empty"),
    (b"RIFF....WAVEfmt garbage" * 10, 400, "could not be decoded"),
    (silence(1.5), 400, "silent"),
    (tone(12.0), 413, "longer than the limit of 10 s"),
])
def test_unusable_audio_is_refused_before_the_model(voice_server: VoiceServer, audio: bytes, status: int,
                                                    message: str) -> None:
    before = command_count(voice_server)
    multipart = listen(voice_server, files={"audio": ("clip.wav", audio)})
    as_json = listen(voice_server, json={"audio_base64": base64.b64encode(audio).decode()}) if audio else None
    for reply in filter(None, (multipart, as_json)):
        assert reply.status_code == status, reply.text
        assert message in reply.json()["detail"]
    assert command_count(voice_server) == before


def test_oversized_upload_is_refused_from_its_declared_length(voice_server: VoiceServer) -> None:
    before = command_count(voice_server)
    reply = listen(voice_server, files={"audio": ("big.wav", b"\0" * 2_100_000)})
    assert reply.status_code == 413 and "limit is 2000000 bytes" in reply.json()["detail"]
    assert command_count(voice_server) == before


def test_oversized_chunked_upload_is_cut_off(voice_server: VoiceServer) -> None:
    sent = 0

    def chunks() -> Any:  # no Content-Length: the server counts as it reads
        nonlocal sent
        for _ in range(40):
            sent += 100_000
            yield b'{"audio_base64": "' if sent == 100_000 else b"A" * 100_000

    reply = listen(voice_server, content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "limit is 2000000 bytes" in reply.json()["detail"]


def test_other_content_types_are_refused(voice_server: VoiceServer) -> None:
    reply = listen(voice_server, content=b"sta op", headers={"content-type": "text/plain"})
    assert reply.status_code == 415 and "application/json" in reply.json()["detail"]


def test_listen_is_documented_for_json_and_multipart(voice_server: VoiceServer) -> None:
    spec = httpx.get(f"{voice_server.url}/openapi.json").json()
    content = spec["paths"]["/api/voice/listen"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert json.dumps(content["application/json"]).count("audio_base64") >= 1


def test_audio_command_as_base64_json(voice_server: VoiceServer, clip: Callable[..., Path]) -> None:
    audio = base64.b64encode(clip("loop vooruit", "nl").read_bytes()).decode()
    body = listen(voice_server, json={"audio_base64": audio, "language": "nl"}).json()
    assert body["status"] == "ok" and body["command"]["action"] == "walk_forward"
    assert body["timings_ms"]["stt"] > 0 and body["timings_ms"]["total"] >= body["timings_ms"]["stt"]

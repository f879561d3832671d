"""One spoken command through the gateway: real Whisper on a real voice node, both voice APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.gateway.conftest import Gateway, Node
from tests.support.system import require_binary


def test_a_spoken_command_reaches_a_voice_node_through_the_gateway(traefik_bin: str, voice_nodes: dict[str, Node],
                                                                   tmp_path: Path, cleanup: list[Any]) -> None:
    require_binary("espeak-ng", ["espeak-ng"])
    require_binary("sox", ["sox"])
    from jetfleet.voice.synth import synthesize

    clip = synthesize("sta op", "nl", tmp_path / "sta-op.wav").read_bytes()
    fleet = [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in voice_nodes.values()]
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet)
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file"])

    with httpx.Client(base_url=gateway.url, timeout=180) as client:
        listened = client.post("/api/voice/listen", files={"audio": ("sta-op.wav", clip, "audio/wav")})
        transcribed = client.post("/v1/audio/transcriptions", files={"file": ("sta-op.wav", clip, "audio/wav")},
                                  data={"language": "nl"})
    assert listened.status_code == 200, listened.text
    body = listened.json()
    assert body["command"]["action"] == "stand_up" and body["status"] == "ok", body
    assert body["node"] in voice_nodes and body["timings_ms"]["stt"] > 0
    assert body["robot"]["executed"] is False  # robot none: a dry run
    assert transcribed.status_code == 200, transcribed.text
    assert "op" in transcribed.json()["text"].lower()

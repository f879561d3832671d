"""The voice server's OpenAPI contract holds: schemathesis (all phases, all checks) against a real server
(real Whisper base). Every operation in /openapi.json is fuzzed, so a route added later is covered too."""

from __future__ import annotations

from pathlib import Path

from tests.support.schemathesis_run import run_schemathesis
from tests.voice.conftest import VoiceServer


def test_voice_server_matches_its_schema(voice_server: VoiceServer, tmp_path: Path) -> None:
    # Each accepted audio request runs the real model on a busy 2-core machine: fewer examples than elsewhere.
    run_schemathesis(f"{voice_server.url}/openapi.json", tmp_path, max_examples=8)

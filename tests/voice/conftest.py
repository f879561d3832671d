"""Fixtures of the voice tests: real espeak-ng + SoX clips, real voice servers (real Whisper base) on
127.0.0.1, a private DDS domain for the fake Go2."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, jetfleet_cmd, managed
from tests.support.system import require_binary

# The packaged model is joined here once and reused by later runs (it is sha256-checked at every start).
MODEL_CACHE = REPO_ROOT / ".cache" / "voice-models"
# The SDK's DDS participant is per process and domain-bound: one private domain per test session.
DDS_DOMAIN = random.randint(100, 230)
START_TIMEOUT = 180.0  # joining + loading + warming up the model on a busy 2-core machine


@dataclass(frozen=True)
class VoiceServer:
    url: str
    process: ManagedProcess


def serve_cmd(port: int, *extra: str, robot: str = "none", node: str = "test-node") -> list[str]:
    return jetfleet_cmd("voice", "serve", "--host", "127.0.0.1", "--port", str(port), "--robot", robot,
                        "--cache-dir", str(MODEL_CACHE), "--node-name", node, *extra)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``clip("sta op", "nl")`` -> a WAV spoken by espeak-ng: slow speech, 0.4 s padding (docs/voice.md)."""
    require_binary("espeak-ng", ["espeak-ng"])
    require_binary("sox", ["sox"])
    from jetfleet.voice.synth import synthesize

    directory = tmp_path_factory.mktemp("clips")
    made: dict[tuple[str, str, int, float, str | None], Path] = {}

    def make(text: str, language: str, *, speed: int = 130, pad_s: float = 0.4, voice: str | None = None) -> Path:
        key = (text, language, speed, pad_s, voice)
        if key not in made:
            name = f"{language}_{text.replace(' ', '_')}_{voice or 'default'}_{speed}_{pad_s:g}.wav".replace("+", "-")
            made[key] = synthesize(text, language, directory / name, speed=speed, pad_s=pad_s, voice=voice)
        return made[key]

    return make


@pytest.fixture(scope="session")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    """One shared server (Dutch, robot none) with small limits so that limit tests stay quick."""
    port = free_port()
    log = tmp_path_factory.mktemp("voice-server") / "server.log"
    argv = serve_cmd(port, "--language", "nl-NL", "--max-upload-bytes", "2000000", "--max-audio-seconds", "10")
    with managed(argv, log, ready_url=f"http://127.0.0.1:{port}/health", timeout=START_TIMEOUT) as proc:
        yield VoiceServer(f"http://127.0.0.1:{port}", proc)

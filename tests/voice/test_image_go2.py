"""The ``voice-go2`` target of Dockerfile.l4t on the local Debian base: the Unitree SDK on CycloneDDS 0.10.2
(Debian's 0.10.2 here; the 0.10.2 git tag on JetPack), driving a DDS test peer over loopback. Every DDS peer
runs from the image, so both sides are 0.10.2, as on a real Go2."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.docker_engine import DockerEngine, _log
from tests.support.processes import REPO_ROOT, free_port, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

GO2_TAG = "jetfleet/voice-go2:test"
DOMAIN = random.randint(100, 230)  # a private DDS domain for this module


@pytest.fixture(scope="module")
def go2_image(docker_engine: DockerEngine, local_debian_base: str) -> str:
    from images.build import build_image

    started = time.monotonic()
    build_image(docker_engine.client, "voice-go2", GO2_TAG, "local", log=_log)
    _log(f"built {GO2_TAG} in {time.monotonic() - started:.0f} s")
    return GO2_TAG


def _python(docker_engine: DockerEngine, image: str, code: str) -> str:
    output = docker_engine.client.containers.run(image, ["-c", code], entrypoint="/opt/jetfleet/bin/python",
                                                 remove=True)
    return str(output.decode().strip())


def test_the_sdk_runs_on_cyclonedds_0_10_2(docker_engine: DockerEngine, go2_image: str) -> None:
    assert docker_engine.client.images.get(go2_image).attrs["Config"]["User"] == "10001"
    check = ("import importlib.metadata as m, cyclonedds.__library__ as lib;"
             " from unitree_sdk2py.go2.sport.sport_client import SportClient;"
             " import importlib.util as u; print(m.version('cyclonedds'), lib.library_path, u.find_spec('cv2'))")
    version, library, cv2 = _python(docker_engine, go2_image, check).split()
    assert version == "0.10.2" and library.startswith("/opt/cyclonedds/lib/") and cv2 == "None"


@pytest.fixture(scope="module")
def fake_go2(docker_engine: DockerEngine, go2_image: str, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Path]:
    """tests/voice/fake_go2_sport.py, run by the image's Python (so on its CycloneDDS 0.10.2)."""
    logs = tmp_path_factory.mktemp("go2-calls")
    logs.chmod(0o777)  # the image's user writes the call log
    container = docker_engine.client.containers.run(
        go2_image, ["-u", "/fake/fake_go2_sport.py", "lo", "--domain", str(DOMAIN), "--log", "/calls/calls.jsonl"],
        entrypoint="/opt/jetfleet/bin/python", network_mode="host", detach=True,
        volumes={str(REPO_ROOT / "tests/voice"): {"bind": "/fake", "mode": "ro"},
                 str(logs): {"bind": "/calls", "mode": "rw"}})
    try:
        wait_until(lambda: _running(container) and b"ready" in container.logs(), 60, what="fake Go2 in the image")
        yield logs / "calls.jsonl"
    finally:
        container.remove(force=True)


def _running(container: Any) -> bool:
    container.reload()
    if container.status == "exited":
        raise AssertionError(f"container exited:\n{container.logs().decode()[-3000:]}")
    return True


def test_the_image_drives_a_go2_over_dds(docker_engine: DockerEngine, go2_image: str, fake_go2: Path) -> None:
    port = free_port()
    server = docker_engine.client.containers.run(
        go2_image, ["--robot", "go2", "--network-interface", "lo", "--dds-domain", str(DOMAIN), "--robot-timeout",
                    "2", "--host", "127.0.0.1", "--port", str(port), "--node-name", "go2-node"],
        network_mode="host", detach=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _running(server) and _ok(f"{url}/health"), 180, interval=0.5, what="voice-go2 healthy")
        assert httpx.get(f"{url}/health").json()["robot"] == "go2"
        answer = httpx.post(f"{url}/api/voice/listen", json={"command": "sta op"}, timeout=30).json()
        assert answer["command"]["action"] == "stand_up", answer
        wait_until(lambda: "RECOVERYSTAND" in _apis(fake_go2), 30, what="the fake Go2 got RecoveryStand")
    finally:
        server.remove(force=True)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _apis(log: Path) -> list[str]:
    if not log.is_file():
        return []
    return [json.loads(line)["api"] for line in log.read_text().splitlines() if line.strip()]

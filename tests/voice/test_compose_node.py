"""compose/node.yaml under the real Docker Compose v2 and Engine, with the x86 voice image: the node's voice
service starts from the file as written (runtime switched to runc: no NVIDIA runtime here), answers /health and
a typed command, and keeps its model cache in the named volume."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from images.build import default_tag
from tests.support.docker_engine import DockerEngine, _log
from tests.support.processes import free_port, subprocess_env, wait_until
from tests.support.system import require_binary

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "node.yaml"
VOICE_TAG = "jetfleet/voice:test"


def test_node_compose_declares_the_jetson_runtime_host_network_and_the_model_volume() -> None:
    voice = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["voice"]
    # by default the image `python -m images.build voice-go2 --base l4t` tags: the one with the Go2 SDK,
    # since the default robot is a Go2 (the plain voice image would stop at start without the SDK)
    assert voice["image"] == f"${{JETFLEET_VOICE_IMAGE:-{default_tag('voice-go2')}}}"
    assert "--robot ${JETFLEET_ROBOT:-go2}" in " ".join(voice["command"])
    assert voice["runtime"] == "${JETFLEET_DOCKER_RUNTIME:-nvidia}"
    assert voice["network_mode"] == "host"
    assert voice["volumes"] == ["voice-models:/opt/jetfleet/voice", "${JETFLEET_UPDATE_LOCK_DIR:-/run/lock}:/run/lock"]
    template = json.loads((COMPOSE_FILE.parents[1] / "config" / "config.json.template").read_text())
    assert f"--update-lock {template['update_lock_path']}" in " ".join(voice["command"])  # the agent's lock
    command = " ".join(voice["command"])
    for option, variable in (("--network-interface", "JETFLEET_ROBOT_INTERFACE"), ("--robot-ip", "JETFLEET_ROBOT_IP"),
                             ("--node-name", "JETFLEET_NODE_NAME"), ("--robot", "JETFLEET_ROBOT")):
        assert f"{option} ${{{variable}" in command, option


@pytest.mark.docker
@pytest.mark.slow
def test_node_compose_runs_the_voice_service(docker_engine: DockerEngine, local_debian_base: str,
                                             tmp_path: Path) -> None:
    from images.build import build_image

    compose_bin = require_binary("docker-compose", [], search=[str(Path(sys.executable).parent)])
    started = time.monotonic()
    build_image(docker_engine.client, "voice", VOICE_TAG, "local", log=_log)
    _log(f"built {VOICE_TAG} in {time.monotonic() - started:.0f} s")
    port = free_port()
    project = f"jfnode{port}"
    lock_dir = tmp_path / "run-lock"
    lock_dir.mkdir()
    lock_dir.chmod(0o1777)  # as /run/lock is
    env = subprocess_env(**docker_engine.env(), JETFLEET_VOICE_IMAGE=VOICE_TAG, JETFLEET_DOCKER_RUNTIME="runc",
                         JETFLEET_NODE_NAME="jetson-compose", JETFLEET_ROBOT="none", JETFLEET_VOICE_HOST="127.0.0.1",
                         JETFLEET_VOICE_PORT=str(port), JETFLEET_ROBOT_INTERFACE="lo",
                         JETFLEET_ROBOT_IP="127.0.0.1", JETFLEET_VOICE_CPU_THREADS="1",
                         JETFLEET_UPDATE_LOCK_DIR=str(lock_dir))
    compose = [compose_bin, "-f", str(COMPOSE_FILE), "-p", project]
    url = f"http://127.0.0.1:{port}"
    up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        try:
            wait_until(lambda: _healthy(url), 240, interval=0.5, what="the compose voice service's /health")
        except AssertionError as exc:
            logs = subprocess.run([*compose, "logs"], env=env, capture_output=True, text=True, timeout=60).stdout
            raise AssertionError(f"{exc}\n{logs[-4000:]}") from None
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["node"] == "jetson-compose" and health["whisper_model"] == "base"
        answer = httpx.post(f"{url}/api/voice/listen", json={"command": "ga liggen"}, timeout=30).json()
        assert answer["command"]["action"] == "lie_down" and answer["node"] == "jetson-compose"
        assert answer["robot"]["executed"] is False  # robot none: a dry run
        assert (lock_dir / "jetson-client.update.lock").is_file()  # held by the container's user while it ran

        state = json.loads(subprocess.run([*compose, "ps", "--format", "json"], env=env, capture_output=True,
                                          text=True, timeout=60).stdout.splitlines()[0])
        assert state["Image"] == VOICE_TAG and state["State"] == "running"
        volume = docker_engine.client.volumes.get(f"{project}_voice-models")
        listing = docker_engine.client.containers.run(
            VOICE_TAG, ["-c", "import os; print(sorted(os.listdir('/cache')))"], entrypoint="/opt/jetfleet/bin/python",
            volumes={volume.name: {"bind": "/cache", "mode": "ro"}}, network_mode="host", remove=True)
        assert "whisper-base" in listing.decode()
    finally:
        down = subprocess.run([*compose, "down", "--volumes", "--timeout", "10"], env=env, capture_output=True,
                              text=True, timeout=300)
        assert down.returncode == 0, down.stderr


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False

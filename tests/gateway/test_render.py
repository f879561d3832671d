"""The renderer's output, and proof that the real Traefik accepts all of it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.errors import ConfigError
from jetfleet.gateway.fleet import Fleet, parse_fleet
from jetfleet.gateway.render import Providers, render_dynamic, render_health_only, static_flags
from jetfleet.traefik.config import validate_dynamic
from tests.gateway.conftest import gateway_settings
from tests.support.processes import ManagedProcess, wait_until

NODES = [
    {"name": "jetson-a", "url": "http://127.0.0.1:8801", "roles": ["voice", "vision"], "weight": 3},
    {"name": "jetson-b", "url": "http://127.0.0.1:8802", "roles": ["voice", "yolov8n"], "backup": True,
     "urls": {"yolov8n": "http://127.0.0.1:9802"}},
    {"name": "jetson-c", "url": "http://127.0.0.1:8803", "roles": ["yolov8n"]},
]


def _fleet(**gateway: Any) -> Fleet:
    return parse_fleet({"gateway": gateway, "nodes": NODES}, source="test")


def _http(**gateway: Any) -> dict[str, Any]:
    http: dict[str, Any] = render_dynamic(_fleet(**gateway), health_url="http://127.0.0.1:8890").dump()["http"]
    return http


def test_paths_go_to_their_pools_with_connection_retries_only_by_default() -> None:
    http = _http()
    rules = {name: (r["rule"], r["service"], r.get("middlewares")) for name, r in http["routers"].items()}
    assert rules == {
        "voice": ("PathPrefix(`/api/voice/`)", "voice", ["retry-connect"]),
        "audio": ("PathPrefix(`/v1/audio/`)", "voice", ["retry-connect"]),
        "vision": ("PathPrefix(`/api/vision/`)", "vision", ["retry-connect"]),
        "model-yolov8n": ("Path(`/v2/models/yolov8n`) || PathPrefix(`/v2/models/yolov8n/`)", "model-yolov8n",
                          ["retry-connect"]),
        "gateway-health": ("Path(`/health`)", "gateway-health", None),
    }
    # No status codes: a request that reached a node is never sent twice.
    assert http["middlewares"] == {"retry-connect": {"retry": {"attempts": 3}}}


def test_in_flight_retries_are_opt_in_per_route_group() -> None:
    http = _http(retry_in_flight=["voice", "models"])
    assert http["routers"]["voice"]["middlewares"] == ["retry-in-flight"]
    assert http["routers"]["model-yolov8n"]["middlewares"] == ["retry-in-flight"]
    assert http["routers"]["audio"]["middlewares"] == ["retry-connect"]
    assert http["middlewares"]["retry-in-flight"] == {
        "retry": {"attempts": 3, "status": ["502"], "retryNonIdempotentMethod": True}}


def test_every_pool_has_active_and_passive_checks_and_bounded_timeouts() -> None:
    http = _http(health_interval="2s", health_timeout="300ms", dial_timeout="1s", response_timeout="15s")
    balancers = {name: s["loadBalancer"] for name, s in http["services"].items()
                 if "loadBalancer" in s and name != "gateway-health"}
    assert set(balancers) == {"voice-primary", "voice-backup", "vision", "model-yolov8n-primary",
                              "model-yolov8n-backup"}
    for name, balancer in balancers.items():
        assert balancer["strategy"] == "leasttime"
        assert balancer["healthCheck"] == {
            "path": "/health" if not name.startswith("model-") else "/v2/models/yolov8n/ready",
            "interval": "2s", "unhealthyInterval": "1s", "timeout": "300ms"}
        assert balancer["passiveHealthCheck"] == {"failureWindow": "2s", "maxFailedAttempts": 1}
        assert balancer["serversTransport"] == "jetson"
        assert "sticky" not in balancer
    assert http["serversTransports"] == {"jetson": {"forwardingTimeouts": {"dialTimeout": "1s",
                                                                           "responseHeaderTimeout": "15s"}}}


def test_backups_become_a_failover_and_weights_and_sticky_carry_over() -> None:
    http = _http(strategy="wrr", sticky=True)
    services = http["services"]
    assert services["voice"] == {"failover": {"service": "voice-primary", "fallback": "voice-backup",
                                              "healthCheck": {}}}
    assert services["voice-primary"]["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:8801", "weight": 3}]
    assert services["voice-backup"]["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:8802"}]
    assert services["model-yolov8n-backup"]["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:9802"}]
    assert services["voice-primary"]["loadBalancer"]["sticky"] == {
        "cookie": {"name": "jetfleet_affinity", "httpOnly": True, "sameSite": "lax"}}


def test_the_health_only_file_has_no_empty_maps() -> None:
    # Found by the compose test: Traefik rejected the whole file over "middlewares: {}".
    assert set(render_health_only("http://127.0.0.1:8890").dump()["http"]) == {"routers", "services"}


def test_static_flags_are_offline_with_metrics_access_log_and_providers() -> None:
    settings = _fleet(port=9000, api_port=9001, metrics_port=9002, host="0.0.0.0", poll_interval="2s").gateway
    flags = static_flags(settings, Providers(file="/etc/traefik/health.yml",
                                             http_endpoint="http://cp:8000/api/v1/gateway/traefik", http_token="T"))
    for expected in ("--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
                     "--entryPoints.web.address=0.0.0.0:9000", "--entryPoints.traefik.address=127.0.0.1:9001",
                     "--entryPoints.metrics.address=0.0.0.0:9002", "--metrics.prometheus.entryPoint=metrics",
                     "--accessLog=true", "--providers.file.filename=/etc/traefik/health.yml",
                     "--providers.http.endpoint=http://cp:8000/api/v1/gateway/traefik",
                     "--providers.http.pollInterval=2s", "--providers.http.headers.Authorization=Bearer T"):
        assert expected in flags


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda c: c["http"]["services"]["vision"]["loadBalancer"]["healthCheck"].update(intervall="1s"),
     "key 'http.services.vision.loadBalancer.healthCheck.intervall'"),
    (lambda c: c["http"]["services"]["vision"]["loadBalancer"]["healthCheck"].update(interval="onesecond"),
     "key 'http.services.vision.loadBalancer.healthCheck.interval'"),
    (lambda c: c["http"]["services"]["vision"]["loadBalancer"].update(strategy="roundrobin"), "strategy"),
    (lambda c: c["http"]["routers"]["vision"].update(service="nowhere"), "unknown service 'nowhere'"),
    (lambda c: c["http"]["services"]["voice-backup"]["loadBalancer"].pop("healthCheck"),
     "service 'voice-backup' needs a healthCheck under a failover healthCheck"),
    (lambda c: c["http"].update(routers={}), "no routers"),
    (lambda c: c["http"].update(middlewares={}), "key 'http.middlewares' in rendered dynamic config: an empty map"),
    (lambda c: c["http"]["middlewares"]["retry-connect"]["retry"].update(disableRetryOnNetworkError=True),
     "retries nothing"),
])
def test_validation_refuses_what_traefik_would_reject_or_disable(mutate: Any, expected: str) -> None:
    config = copy.deepcopy(render_dynamic(_fleet()).dump())
    validate_dynamic(config)
    mutate(config)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate_dynamic(config)


def test_real_traefik_accepts_every_rendered_object(traefik_bin: str, tmp_path: Path) -> None:
    settings = gateway_settings(strategy="p2c", sticky=True, retry_in_flight=["voice"])
    fleet = parse_fleet({"gateway": settings, "nodes": NODES}, source="test")
    dynamic = tmp_path / "dynamic.yml"
    dynamic.write_text(yaml.safe_dump(render_dynamic(fleet, health_url="http://127.0.0.1:8890").dump()))
    flags = static_flags(fleet.gateway, Providers(file=str(dynamic)))
    api = f"http://127.0.0.1:{settings['api_port']}"
    process = ManagedProcess([traefik_bin, *flags], tmp_path / "traefik.log")
    try:
        process.wait_http(api + "/ping", 30)
        wait_until(lambda: len(httpx.get(api + "/api/http/routers").json()) >= 9, 15, what="routers loaded")
        overview = httpx.get(api + "/api/overview").json()["http"]
        routers = [r for r in httpx.get(api + "/api/http/routers").json() if r["provider"] == "file"]
        services = [s for s in httpx.get(api + "/api/http/services").json() if s["provider"] == "file"]
    finally:
        process.stop()
    assert {r["name"] for r in routers} == {"voice@file", "audio@file", "vision@file", "model-yolov8n@file",
                                            "gateway-health@file"}
    assert len(services) == 8
    assert all(item["status"] == "enabled" for item in [*routers, *services]), [*routers, *services]
    assert all(overview[kind]["errors"] == 0 and overview[kind]["warnings"] == 0
               for kind in ("routers", "services", "middlewares")), overview
    assert " ERR " not in process.log_path.read_text()

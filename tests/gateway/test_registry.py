"""The control plane feeds Traefik (HTTP provider): Jetsons join and leave the gateway as they come and go."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.bench.load import Request, failures, share_by_node
from jetfleet.traefik.config import validate_dynamic
from tests.agent.test_agent_integration import agent_config, start_agent
from tests.gateway.conftest import Gateway, Node, Stream, command, describe, gateway_settings
from tests.support.backend import BackendProcess
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until

HARDWARE = {"platform": "x86_64", "arch": "x86_64"}


def _register(client: httpx.Client, device_id: str, interval: float = 30.0) -> str:
    response = client.post("/api/v1/edge-devices/register", json={
        "device_id": device_id, "device_name": device_id, "hardware": HARDWARE, "heartbeat_interval": interval})
    response.raise_for_status()
    token: str = response.json()["device_token"]
    return token


def _beat(client: httpx.Client, device_id: str, token: str, **body: Any) -> None:
    client.post(f"/api/v1/edge-devices/{device_id}/heartbeat", json=body,
                headers={"Authorization": f"Bearer {token}"}).raise_for_status()


def _config(backend: BackendProcess, query: str = "") -> dict[str, Any]:
    with backend.admin() as admin:
        response = admin.get("/api/v1/gateway/traefik" + query)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    validate_dynamic(config)
    return config


def _servers(config: dict[str, Any], service: str) -> set[str]:
    return {s["url"] for s in config["http"]["services"][service]["loadBalancer"].get("servers", [])}


def test_endpoint_routes_what_online_devices_actually_serve(backend: BackendProcess) -> None:
    ids = [f"gw-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    port = 20000 + uuid.uuid4().int % 20000
    voice_url, sick_url, model_url = (f"http://127.0.0.1:{port + i}" for i in range(3))
    with httpx.Client(base_url=backend.url, timeout=10) as client:
        tokens = [_register(client, device_id) for device_id in ids]
        _beat(client, ids[0], tokens[0], services=[{"role": "voice", "url": voice_url, "healthy": True}],
              models=[{"name": "yolov8n", "serving_version": 3, "endpoint": model_url + "/v2/models/yolov8n"},
                      {"name": "resnet", "target_version": 1, "state": "downloading", "endpoint": model_url}])
        _beat(client, ids[1], tokens[1], services=[{"role": "voice", "url": sick_url, "healthy": False}])
        _beat(client, ids[2], tokens[2], services=[{"role": "vision", "url": voice_url, "healthy": True}])

    def reported() -> dict[str, Any] | None:  # heartbeats are written in batches: wait for all three
        config = _config(backend)
        seen = voice_url in _servers(config, "voice") and voice_url in _servers(config, "vision")
        return config if seen and "model-yolov8n" in config["http"]["services"] else None

    config = wait_until(reported, 10, what="the devices in the config")
    assert isinstance(config, dict)
    http = config["http"]
    assert voice_url in _servers(config, "voice") and sick_url not in _servers(config, "voice")
    assert _servers(config, "model-yolov8n") == {model_url}  # the endpoint's origin; the path stays the client's
    assert "model-resnet" not in http["services"]  # reported, but not serving yet
    assert voice_url in _servers(config, "vision")
    assert http["routers"]["voice"]["rule"] == "PathPrefix(`/api/voice/`)"
    assert http["services"]["voice"]["loadBalancer"]["strategy"] == "leasttime"

    wrr = _config(backend, "?strategy=wrr&retry_in_flight=voice&health_interval=500ms")["http"]
    assert wrr["services"]["voice"]["loadBalancer"]["strategy"] == "wrr"
    assert wrr["services"]["voice"]["loadBalancer"]["healthCheck"]["interval"] == "500ms"
    assert wrr["routers"]["voice"]["middlewares"] == ["retry-in-flight"]


def test_endpoint_needs_the_admin_token_and_refuses_bad_settings(backend: BackendProcess) -> None:
    assert httpx.get(backend.url + "/api/v1/gateway/traefik").status_code == 401
    with backend.admin() as admin:
        bad = admin.get("/api/v1/gateway/traefik", params={"strategy": "fastest"})
        unknown = admin.get("/api/v1/gateway/traefik", params={"port": "80"})
    assert bad.status_code == 400 and "key 'strategy'" in bad.json()["detail"]
    assert unknown.status_code == 400 and "key 'port'" in unknown.json()["detail"]


def test_never_an_empty_config_and_offline_devices_leave(sqlite_backend: BackendProcess) -> None:
    empty = _config(sqlite_backend)["http"]
    assert set(empty["routers"]) == {"voice", "audio", "vision"}  # 503 "no node" rather than 404 everywhere
    assert _servers({"http": empty}, "voice") == set()

    with httpx.Client(base_url=sqlite_backend.url, timeout=10) as client:
        token = _register(client, "jetson-brief", interval=0.5)
        _beat(client, "jetson-brief", token, services=[{"role": "voice", "url": "http://127.0.0.1:9", "healthy": True}])
    wait_until(lambda: _servers(_config(sqlite_backend), "voice") == {"http://127.0.0.1:9"}, 10, what="joined")
    # No more heartbeats: offline after 3 missed intervals (1.5 s), and gone from the config.
    wait_until(lambda: _servers(_config(sqlite_backend), "voice") == set(), 10, what="left")


def _device(backend: BackendProcess, device_id: str) -> dict[str, Any] | None:
    with backend.admin() as admin:
        response = admin.get(f"/api/v1/edge-devices/{device_id}")
    return response.json() if response.status_code == 200 else None


def _serves_voice(backend: BackendProcess, device_id: str) -> bool:
    record = _device(backend, device_id)
    return bool(record and record["status"] == "online"
                and any(s["role"] == "voice" and s.get("healthy") for s in record["services"]))


def _first_served_by(stream: Stream, node: str, after: float, timeout: float) -> float:
    """Stream time of the first request answered by ``node`` that was sent after ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [o.sent_at for o in list(stream.outcomes_so_far()) if o.node == node and o.sent_at >= after]
        if hits:
            return min(hits)
        time.sleep(0.05)
    raise AssertionError(f"{node} served nothing within {timeout}s")


@pytest.mark.slow
def test_new_jetson_joins_within_two_polls_and_leaves_when_its_heartbeats_stop(
        traefik_bin: str, voice_nodes: dict[str, Node], sqlite_backend: BackendProcess, tmp_path: Path,
        cleanup: list[Any]) -> None:
    nodes = list(voice_nodes.values())
    agents = {}
    for node in nodes[:2]:
        agents[node.name] = start_agent(agent_config(tmp_path, sqlite_backend, node.name,
                                                     services=[{"role": "voice", "url": node.url}]))
        cleanup.append(agents[node.name])
    for node in nodes[:2]:
        wait_until(lambda n=node.name: _serves_voice(sqlite_backend, n), 60, what=f"{node.name} online")

    settings = gateway_settings(strategy="wrr", poll_interval="1s")
    settings_file = tmp_path / "gateway.yml"
    settings_file.write_text(yaml.safe_dump({"gateway": settings}))
    gateway = Gateway(tmp_path / "gw", ["--from-backend", sqlite_backend.url, "--token", sqlite_backend.admin_token,
                                        "--settings", str(settings_file)], settings)
    cleanup.append(gateway)
    gateway.wait_ready(["voice@http"])
    assert gateway.server_status("voice@http").keys() == {nodes[0].url, nodes[1].url}
    health = httpx.get(gateway.url + "/health", timeout=5)  # the local file's route, next to the HTTP provider
    assert health.status_code == 200, health.text
    assert {b["url"] for b in health.json()["backends"]} == {nodes[0].url, nodes[1].url}

    stream = Stream(Request("POST", gateway.url + "/api/voice/listen", json=command), rate=20, count=400)
    stream.sleep_until(1.0)
    newcomer = nodes[2]
    agents[newcomer.name] = start_agent(agent_config(tmp_path, sqlite_backend, newcomer.name,
                                                     services=[{"role": "voice", "url": newcomer.url}]))
    cleanup.append(agents[newcomer.name])
    wait_until(lambda: _serves_voice(sqlite_backend, newcomer.name), 60, interval=0.02, what="newcomer registered")
    registered_at = stream.now()
    joined_at = _first_served_by(stream, newcomer.name, registered_at, timeout=10)
    assert joined_at - registered_at <= 2.0, f"joined {joined_at - registered_at:.2f}s after registering"

    agents[newcomer.name].stop()  # its heartbeats stop; its voice server keeps running
    wait_until(lambda: (_device(sqlite_backend, newcomer.name) or {}).get("status") == "offline", 30,
               interval=0.02, what="newcomer offline")
    offline_at = stream.now()
    wait_until(lambda: newcomer.url not in gateway.server_status("voice@http"), 2.5, interval=0.02,
               what="newcomer removed from Traefik within two polls")
    removed_at = stream.now()
    assert removed_at - offline_at <= 2.0 + 0.3  # two polls, plus this loop's own polling
    outcomes = stream.join(60)

    assert not failures(outcomes), describe(outcomes)
    assert share_by_node(o for o in outcomes if o.sent_at > removed_at + 0.2)[newcomer.name] == 0

    monitor = subprocess.run(jetfleet_cmd("gateway", "monitor", "--once", "--json", "--from-backend",
                                          sqlite_backend.url, "--token", sqlite_backend.admin_token,
                                          "--settings", str(settings_file)),
                             capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert monitor.returncode == 0, monitor.stderr
    snapshot = json.loads(monitor.stdout)
    by_name = {n["name"]: n for n in snapshot["nodes"]}
    assert by_name["jetson-a"]["online"] and by_name["jetson-a"]["traefik_up"] is True
    assert by_name["jetson-c"]["online"] is False and by_name["jetson-c"]["traefik_up"] is None
    assert by_name["jetson-a"]["robot_connected"] is False and by_name["jetson-a"]["whisper_model"]
    assert by_name["jetson-a"]["command_count"] > 0 and by_name["jetson-a"]["latency_p50_ms"] is not None
    voice = next(s for s in snapshot["services"] if s["name"] == "voice@http")
    assert voice["servers_up"] == 2 and voice["requests"] >= 400 and voice["errors"] == 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd("gateway", *args), capture_output=True, text=True, env=subprocess_env(),
                          timeout=60)


def test_render_from_backend_and_clear_errors_before_traefik(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rendered = _cli("render", "--from-backend", sqlite_backend.url, "--token", sqlite_backend.admin_token,
                    "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    validate_dynamic(yaml.safe_load((out / "registry-snapshot.yml").read_text()))
    assert set(yaml.safe_load((out / "health.yml").read_text())["http"]["routers"]) == {"gateway-health"}
    flags = (out / "traefik.flags").read_text().splitlines()
    assert f"--providers.http.endpoint={sqlite_backend.url}/api/v1/gateway/traefik" in flags
    assert f"--providers.http.headers.Authorization=Bearer {sqlite_backend.admin_token}" in flags

    refused = _cli("run", "--from-backend", sqlite_backend.url, "--token", "wrong-token", "--work-dir", str(tmp_path))
    assert refused.returncode == 2 and "unknown token" in refused.stderr and "--token" in refused.stderr
    unreachable = _cli("run", "--from-backend", "http://127.0.0.1:9", "--token", "x", "--work-dir", str(tmp_path))
    assert unreachable.returncode == 2 and "cannot reach control plane" in unreachable.stderr
    assert not (tmp_path / "health.yml").exists()  # nothing was written, Traefik never started


def test_a_device_reporting_backup_and_weight_is_placed_without_a_fleet_file(tmp_path: Path) -> None:
    from tests.support.backend import backend_server

    primary, backup = "http://127.0.0.1:20001", "http://127.0.0.1:20002"
    with backend_server(tmp_path / "backend") as fresh, httpx.Client(base_url=fresh.url, timeout=10) as client:
        for device_id, service in (("gw-primary", {"role": "voice", "url": primary, "healthy": True, "weight": 3}),
                                   ("gw-backup", {"role": "voice", "url": backup, "healthy": True, "backup": True})):
            _beat(client, device_id, _register(client, device_id), services=[service])

        def placed() -> dict[str, Any] | None:
            services = _config(fresh)["http"]["services"]
            return services if "voice-backup" in services and "voice-primary" in services else None

        services = wait_until(placed, 10, what="the voice primary and backup pools")
    assert isinstance(services, dict)
    assert services["voice"]["failover"] == {"service": "voice-primary", "fallback": "voice-backup",
                                             "healthCheck": {}}
    assert services["voice-primary"]["loadBalancer"]["servers"] == [{"url": primary, "weight": 3}]
    assert services["voice-backup"]["loadBalancer"]["servers"] == [{"url": backup}]

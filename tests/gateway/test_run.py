"""``jetfleet gateway run``: the real Traefik behind the gateway's own /health, stopped cleanly by PID."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.gateway.health import summarize
from jetfleet.gateway.monitor import PROBE_TIMEOUT_SECONDS
from tests.gateway.conftest import Gateway, Node, command, wait_status
from tests.support.processes import ManagedProcess, jetfleet_cmd, subprocess_env, wait_until


def _health(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    response = httpx.get(gateway.url + "/health", timeout=5)
    return response.status_code, response.json()


def test_gateway_health_reports_every_backend_and_sigterm_stops_traefik(
        traefik_bin: str, voice_nodes: dict[str, Node], tmp_path: Path, cleanup: list[Any]) -> None:
    nodes = [voice_nodes["jetson-a"], voice_nodes["jetson-b"]]
    fleet = [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes]
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet, strategy="wrr")
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file"])

    code, body = _health(gateway)
    assert code == 200 and body["status"] == "ok", body
    assert {(b["node"], b["status"]) for b in body["backends"]} == {("jetson-a", "UP"), ("jetson-b", "UP")}
    assert body["services"] == {"voice@file": "available"}

    counts = [n.status()["command_count"] for n in nodes]
    with httpx.Client(timeout=30) as client:
        for i in range(6):
            assert client.post(gateway.url + "/api/voice/listen", json=command(i)).status_code == 200
    snapshot = json.loads(_monitor(gateway, "--json"))
    rows = {n["name"]: n for n in snapshot["nodes"]}
    for node, before in zip(nodes, counts, strict=True):
        row = rows[node.name]
        assert (row["online"], row["traefik_up"], row["robot_connected"]) == (True, True, False)
        assert row["command_count"] == before + 3 and row["latency_p50_ms"] is not None and row["whisper_model"]
    assert snapshot["services"] == [{"name": "voice@file", "servers_up": 2, "servers": 2, "requests": 6,
                                     "errors": 0}]
    table = _monitor(gateway)
    assert "jetson-a" in table and "online" in table and "voice@file" in table

    nodes[0].kill9()
    wait_status(gateway, "voice@file", nodes[0].url, "DOWN", timeout=10)
    code, body = _health(gateway)
    assert code == 200 and body["status"] == "degraded"
    assert {b["node"]: b["status"] for b in body["backends"]} == {"jetson-a": "DOWN", "jetson-b": "UP"}

    assert nodes[1].process is not None
    nodes[1].process.signal(signal.SIGSTOP)  # a hung board: its probe times out
    wait_status(gateway, "voice@file", nodes[1].url, "DOWN", timeout=10)
    code, body = _health(gateway)
    assert code == 503 and body["status"] == "down" and body["services"] == {"voice@file": "unavailable"}
    nodes[1].process.signal(signal.SIGCONT)

    match = re.search(r"traefik started \(pid (\d+)\)", gateway.process.output())
    assert match, gateway.process.output()
    traefik_pid = int(match.group(1))
    began = time.monotonic()
    gateway.process.signal(signal.SIGTERM)
    gateway.process.proc.wait(15)
    assert gateway.process.proc.returncode == 0
    assert time.monotonic() - began < 10
    wait_until(lambda: not os.path.exists(f"/proc/{traefik_pid}"), 5, what="traefik gone")
    assert f"traefik (pid {traefik_pid}) stopped" in gateway.process.output()


def _monitor(gateway: Gateway, *args: str) -> str:
    assert gateway.fleet_file is not None
    result = subprocess.run(jetfleet_cmd("gateway", "monitor", "--once", "--fleet", str(gateway.fleet_file), *args),
                            capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_live_monitor_stops_cleanly_on_ctrl_c_or_sigterm_even_mid_snapshot(sig: int, tmp_path: Path) -> None:
    with socket.socket() as silent:  # a voice node that accepts and never answers: each probe waits its timeout
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        fleet = tmp_path / "fleet.yml"
        fleet.write_text(yaml.safe_dump({"nodes": [{"name": "hung", "url": f"http://127.0.0.1:"
                                                    f"{silent.getsockname()[1]}", "roles": ["voice"]}]}))
        monitor = ManagedProcess(jetfleet_cmd("gateway", "monitor", "--fleet", str(fleet), "--json",
                                              "--interval", "0.5", "--traefik-api", "http://127.0.0.1:1"),
                                 tmp_path / "monitor.log", env=subprocess_env())
        try:
            wait_until(lambda: '"hung"' in monitor.output(), 60, what="a first snapshot")
            began = time.monotonic()
            monitor.signal(sig)
            assert monitor.proc.wait(timeout=15) == 0, monitor.output()
            assert time.monotonic() - began < PROBE_TIMEOUT_SECONDS + 5  # at most the snapshot in progress
        finally:
            monitor.stop()


def _lb(name: str, status: dict[str, str], enabled: bool = True) -> dict[str, Any]:
    return {"name": name, "provider": "file", "type": "loadbalancer", "status": "enabled" if enabled else "disabled",
            "loadBalancer": {"servers": [{"url": url} for url in status]}, "serverStatus": status}


def test_health_counts_a_failover_as_available_while_its_backup_is_up() -> None:
    services = [
        {"name": "voice@file", "provider": "file", "type": "failover", "status": "enabled",
         "failover": {"service": "voice-primary", "fallback": "voice-backup"}},
        _lb("voice-primary@file", {"http://a:1": "DOWN"}),
        _lb("voice-backup@file", {"http://b:1": "UP"}),
        _lb("vision@http", {}),  # the registry's empty pool: no node, not counted
        _lb("gateway-health@file", {"http://127.0.0.1:8890": "UP"}),
        {"name": "api@internal", "provider": "internal", "status": "enabled"},
    ]
    code, body = summarize(services, {"http://a:1": "jetson-a"})
    assert code == 200 and body["status"] == "degraded"
    assert body["services"] == {"voice@file": "available", "vision@http": "unavailable"}
    assert body["backends"][0] == {"service": "voice-backup@file", "url": "http://b:1", "status": "UP", "node": None}

    services[2] = _lb("voice-backup@file", {"http://b:1": "DOWN"})
    assert summarize(services)[0] == 503
    assert summarize([_lb("model-x@file", {"http://c:1": "UP"}, enabled=False)])[0] == 503


def test_health_is_starting_until_traefik_has_loaded_the_gateways_routes() -> None:
    internal = [{"name": "api@internal", "provider": "internal", "status": "enabled"}]
    code, body = summarize(internal)
    assert code == 503 and body["status"] == "starting"
    code, body = summarize([*internal, _lb("voice@file", {"http://a:1": "UP"})])
    assert code == 200 and body["status"] == "ok"

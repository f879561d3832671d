"""The real agent process against a real control plane: register, heartbeat, restarts, outages, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.agent.test_identity import fake_host
from tests.support.backend import BackendProcess
from tests.support.processes import ManagedProcess, free_port, jetfleet_cmd, subprocess_env, wait_until


def agent_config(tmp_path: Path, backend: BackendProcess | str, name: str, **overrides: Any) -> Path:
    node = tmp_path / name
    node.mkdir(parents=True, exist_ok=True)
    config = {
        "backend_url": backend if isinstance(backend, str) else backend.url,
        "device_name": name, "device_id": name, "state_dir": str(node / "state"),
        "models_dir": str(node / "models"), "log_file": str(node / "agent.log"), "heartbeat_interval": 0.5,
        "metrics_port": free_port(), "metrics_host": "127.0.0.1", **overrides,
    }
    path = node / "config.json"
    path.write_text(json.dumps(config))
    return path


def start_agent(config: Path, **env: str) -> ManagedProcess:
    return ManagedProcess(jetfleet_cmd("agent", "run", "--config", str(config)), config.parent / "stdout.log",
                          env=subprocess_env(**env))


def device_online(backend: BackendProcess, device_id: str) -> dict[str, Any] | None:
    with backend.admin() as admin:
        response = admin.get(f"/api/v1/edge-devices/{device_id}")
    if response.status_code != 200:
        return None
    record: dict[str, Any] = response.json()
    return record if record["status"] == "online" and record["metrics"] else None


def test_two_agents_register_heartbeat_and_show_in_fleet_status(sqlite_backend: BackendProcess,
                                                                tmp_path: Path) -> None:
    agents = [start_agent(agent_config(tmp_path, sqlite_backend, name)) for name in ("jetson-a", "jetson-b")]
    try:
        for name in ("jetson-a", "jetson-b"):
            record = wait_until(lambda n=name: device_online(sqlite_backend, n), 30, what=f"{name} online")
            assert isinstance(record, dict)
            metrics = record["metrics"]
            assert 0 <= metrics["cpu_utilization_ratio"] <= 1
            assert 0 < metrics["memory_used_bytes"] < metrics["memory_total_bytes"]
            assert 0 < metrics["disk_used_bytes"] < metrics["disk_total_bytes"]
            assert record["hardware"]["cpu_cores"] >= 1
            assert record["device_name"] == name
        status = subprocess.run(jetfleet_cmd("fleet", "status", "--json", "--backend-url", sqlite_backend.url,
                                             "--token", sqlite_backend.admin_token),
                                capture_output=True, text=True, env=subprocess_env(), timeout=60)
        listed = {d["device_id"]: d["status"] for d in json.loads(status.stdout)}
        assert listed == {"jetson-a": "online", "jetson-b": "online"}
    finally:
        for agent in agents:
            agent.stop()


def test_restart_keeps_the_mac_derived_id_and_token(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    host = fake_host(tmp_path / "host", {"eth0": "48:b0:2d:12:34:56"}, physical={"eth0"}, default="eth0")
    config = agent_config(tmp_path, sqlite_backend, "node", device_id=None, host_root=str(host))
    agent = start_agent(config)
    try:
        wait_until(lambda: device_online(sqlite_backend, "jf-48b02d123456"), 30, what="MAC-derived device online")
        identity_file = config.parent / "state/identity.json"
        assert identity_file.stat().st_mode & 0o777 == 0o600
        first = json.loads(identity_file.read_text())
        assert first["device_id"] == "jf-48b02d123456" and first["device_token"]

        began = time.monotonic()
        agent.signal(signal.SIGTERM)
        agent.proc.wait(5)
        assert time.monotonic() - began < 2.0, "SIGTERM must stop the agent within 2 s"
        assert agent.proc.returncode == 0
        agent.stop()

        (host / "sys/class/net/eth0/address").write_text("48:b0:2d:ff:ff:ff\n")  # even if the NIC changes
        agent = start_agent(config)
        wait_until(lambda: "connected to control plane" in (config.parent / "agent.log").read_text()
                   .split("agent stopped")[-1], 30, what="the restarted agent to heartbeat")
        assert json.loads(identity_file.read_text()) == first
        with sqlite_backend.admin() as admin:
            ids = [d["device_id"] for d in admin.get("/api/v1/edge-devices").json()]
        assert ids.count("jf-48b02d123456") == 1 and "jf-48b02dffffff" not in ids
    finally:
        agent.stop()


def test_agent_rides_out_a_control_plane_outage_without_restarting(sqlite_backend: BackendProcess,
                                                                   tmp_path: Path) -> None:
    config = agent_config(tmp_path, sqlite_backend, "jetson-a")
    port = json.loads(config.read_text())["metrics_port"]
    agent = start_agent(config)
    log = config.parent / "agent.log"
    try:
        wait_until(lambda: device_online(sqlite_backend, "jetson-a"), 30, what="online")
        sqlite_backend.kill()
        wait_until(lambda: heartbeat_failures(port) >= 3, 30, interval=0.2, what="several failed heartbeats")
        assert agent.alive()
        sqlite_backend.start()
        restarted_at = time.time()

        def beat_after_restart() -> bool:
            record = device_online(sqlite_backend, "jetson-a")
            if record is None:
                return False
            last = record["last_heartbeat"].replace("Z", "+00:00")
            from datetime import datetime

            return datetime.fromisoformat(last).timestamp() > restarted_at

        wait_until(beat_after_restart, 30, what="a heartbeat after the restart")
        # The control plane records the heartbeat before the agent reads the answer and logs the reconnect.
        wait_until(lambda: log.read_text().count("connected to control plane") >= 2, 30, interval=0.1,
                   what="the agent logging the reconnect")
        assert agent.alive()
        text = log.read_text()
        assert text.count("unreachable") == 1, text  # logged once per state change, not per attempt
        assert text.count("connected to control plane") == 2, text
    finally:
        agent.stop()


def heartbeat_failures(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    return samples.get("jetfleet_heartbeat_failures_total", 0.0)


def test_exporter_serves_metrics_scraped_over_http(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    config = agent_config(tmp_path, sqlite_backend, "jetson-a")
    port = json.loads(config.read_text())["metrics_port"]
    agent = start_agent(config)
    try:
        wait_until(lambda: device_online(sqlite_backend, "jetson-a"), 30, what="online")

        def samples() -> dict[str, Any]:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return {s.name: s for family in text_string_to_metric_families(text) for s in family.samples}

        scraped = wait_until(lambda: (s := samples()).get("jetfleet_heartbeats_total") and
                             s["jetfleet_heartbeats_total"].value >= 2 and s, 30, what="2 heartbeats")
        assert isinstance(scraped, dict)
        assert scraped["jetfleet_device_info"].labels["device_id"] == "jetson-a"
        assert 0 <= scraped["jetfleet_cpu_utilization_ratio"].value <= 1
        assert scraped["jetfleet_memory_total_bytes"].value > 0
        assert scraped["jetfleet_last_heartbeat_timestamp_seconds"].value > time.time() - 60
        reported = sqlite_backend.device("jetson-a")["services"]
        metrics = [s for s in reported if s["role"] == "metrics"]
        assert [(s["url"], s["healthy"]) for s in metrics] == [(f"http://127.0.0.1:{port}", True)]
    finally:
        agent.stop()


def test_run_once(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    config = agent_config(tmp_path, sqlite_backend, "jetson-a")
    result = subprocess.run(jetfleet_cmd("agent", "run", "--config", str(config), "--once"), capture_output=True,
                            text=True, env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "device jetson-a: heartbeat accepted" in result.stdout
    assert "pending model updates: 0" in result.stdout
    assert sqlite_backend.device("jetson-a")["status"] == "online"

    down = agent_config(tmp_path, "http://127.0.0.1:9", "jetson-b")
    failed = subprocess.run(jetfleet_cmd("agent", "run", "--config", str(down), "--once"), capture_output=True,
                            text=True, env=subprocess_env(), timeout=60)
    assert failed.returncode == 1
    assert "error: heartbeat failed: cannot reach control plane http://127.0.0.1:9" in failed.stderr


def test_taken_device_id_is_reported_and_claimed_after_reprovision(sqlite_backend: BackendProcess,
                                                                   tmp_path: Path) -> None:
    first = subprocess.run(jetfleet_cmd("agent", "run", "--once", "--config",
                                        str(agent_config(tmp_path / "one", sqlite_backend, "jetson-x"))),
                           capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert first.returncode == 0, first.stderr
    config = agent_config(tmp_path / "two", sqlite_backend, "jetson-x")  # same id, no token: an impostor
    agent = start_agent(config)
    log = config.parent / "agent.log"
    try:
        wait_until(lambda: "already registered by another device" in log.read_text(), 30, what="the refusal")
        assert agent.alive()
        with sqlite_backend.admin() as admin:
            admin.post("/api/v1/edge-devices/jetson-x/reprovision").raise_for_status()
        # The agent retries a refused registration only every 60 s; restart it to claim the id now.
        agent.stop()
        agent = start_agent(config)
        wait_until(lambda: "registered as jetson-x" in log.read_text(), 30, what="the claim")
    finally:
        agent.stop()


def test_under_systemd_logs_carry_journal_priorities(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    config = agent_config(tmp_path, sqlite_backend, "jetson-a", log_file=None)
    agent = start_agent(config, JOURNAL_STREAM="8:12345")
    try:
        wait_until(lambda: "<6>jetfleet.agent.heartbeat: connected" in agent.output(), 30, what="journal line")
    finally:
        agent.stop()

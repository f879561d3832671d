"""``jetfleet backend serve`` start-up errors, provisioning keys and the ``jetfleet fleet`` admin commands."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.backend.test_device_api import heartbeat, register
from tests.conftest import unique_id
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import jetfleet_cmd, subprocess_env


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args), capture_output=True, text=True, env=subprocess_env(**env), timeout=60)


def test_backend_refuses_to_start_without_admin_token_or_with_a_bad_database(tmp_path: Path) -> None:
    no_token = run_cli("backend", "serve", "--port", "1", "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert no_token.returncode == 2
    assert "admin token is required" in no_token.stderr
    bad_db = run_cli("backend", "serve", "--port", "1", "--database-url", "mysql://x", "--admin-token", "longenough")
    assert bad_db.returncode == 2
    assert "unsupported database URL" in bad_db.stderr


def test_provisioning_key_gates_new_registrations(tmp_path: Path) -> None:
    with backend_server(tmp_path, extra_args=["--provisioning-key", "fleet-key-1"]) as backend:
        device_id = unique_id()
        refused = register(backend, device_id)
        assert refused.status_code == 401
        assert "provisioning key" in refused.json()["detail"]
        accepted = httpx.post(f"{backend.url}/api/v1/edge-devices/register",
                              json={"device_id": device_id, "device_name": "a",
                                    "hardware": {"platform": "x86_64", "arch": "x86_64"}},
                              headers={"X-Provisioning-Key": "fleet-key-1"})
        assert accepted.status_code == 201


def test_fleet_status_json_and_table(sqlite_backend: BackendProcess) -> None:
    online_id, offline_id = unique_id("online"), unique_id("offline")
    token = register(sqlite_backend, online_id, device_name="jetson-a").json()["device_token"]
    heartbeat(sqlite_backend, online_id, token, {"metrics": {"cpu_utilization_ratio": 0.5,
                                                              "temperatures_celsius": {"cpu": 61.0}}})
    register(sqlite_backend, offline_id, device_name="jetson-b")

    result = run_cli("fleet", "status", "--json", "--backend-url", sqlite_backend.url,
                     "--token", sqlite_backend.admin_token)
    assert result.returncode == 0, result.stderr
    devices = {d["device_id"]: d for d in json.loads(result.stdout)}
    assert devices[online_id]["status"] == "online"
    assert devices[online_id]["device_name"] == "jetson-a"
    assert devices[online_id]["metrics"]["cpu_utilization_ratio"] == 0.5
    assert devices[online_id]["last_heartbeat"]
    assert devices[offline_id]["status"] == "offline"
    assert devices[offline_id]["last_heartbeat"] is None

    # Environment fallbacks, and the table.
    table = run_cli("fleet", "status", JETFLEET_BACKEND_URL=sqlite_backend.url,
                    JETFLEET_TOKEN=sqlite_backend.admin_token, COLUMNS="200")
    assert table.returncode == 0, table.stderr
    online_row = next(line for line in table.stdout.splitlines() if online_id in line)
    assert "online" in online_row and "50%" in online_row and "61°C" in online_row
    assert "never" in next(line for line in table.stdout.splitlines() if offline_id in line)


def test_fleet_commands_give_clear_errors(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    wrong_token = run_cli("fleet", "status", "--backend-url", sqlite_backend.url, "--token", "wrong")
    assert wrong_token.returncode == 2
    assert "admin token" in wrong_token.stderr and "JETFLEET_TOKEN" in wrong_token.stderr
    unreachable = run_cli("fleet", "status", "--backend-url", "http://127.0.0.1:9", "--token", "x")
    assert unreachable.returncode == 2
    assert "cannot reach control plane http://127.0.0.1:9" in unreachable.stderr
    missing = run_cli("fleet", "show", unique_id(), "--backend-url", sqlite_backend.url,
                      "--token", sqlite_backend.admin_token)
    assert missing.returncode == 2 and "unknown device" in missing.stderr


def test_fleet_reprovision_and_remove(sqlite_backend: BackendProcess) -> None:
    device_id = unique_id()
    register(sqlite_backend, device_id)
    args = ["--backend-url", sqlite_backend.url, "--token", sqlite_backend.admin_token]
    assert run_cli("fleet", "reprovision", device_id, *args).returncode == 0
    assert register(sqlite_backend, device_id).status_code == 201
    assert run_cli("fleet", "remove", device_id, *args).returncode == 0
    shown = run_cli("fleet", "show", device_id, *args)
    assert shown.returncode == 2

"""The shipped Prometheus config, alert rules and Grafana dashboards, run against real processes.

A real Prometheus discovers a real agent through the control plane's http_sd endpoint (as in compose),
and every dashboard query must return data: a renamed metric fails here, not on an operator's screen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.agent.test_agent_integration import agent_config, start_agent
from tests.support.backend import BackendProcess
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, wait_until
from tests.support.system import require_binary

COMPOSE = REPO_ROOT / "compose"
ORIN = REPO_ROOT / "tests/fixtures/jetson/agx-orin-32gb-jp6"
FAKE_TEGRASTATS = REPO_ROOT / "tests/fixtures/jetson/bin/fake-tegrastats"
ORIN_LINES = REPO_ROOT / "tests/fixtures/jetson/tegrastats/agx-orin-jp6.txt"
sys.path.insert(0, str(COMPOSE / "grafana"))
import dashboards  # noqa: E402


def prometheus_files(tmp: Path, backend: BackendProcess) -> Path:
    """The compose config with its container paths and hosts pointed at this test's loopback processes."""
    text = (COMPOSE / "prometheus/prometheus.yml").read_text()
    text = (text.replace("/etc/prometheus/", f"{tmp}/")
            .replace("/run/secrets/jetfleet-read-token", f"{tmp}/read-token")
            .replace("127.0.0.1:8000", f"127.0.0.1:{backend.port}"))
    config = yaml.safe_load(text)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    for job in config["scrape_configs"]:
        for sd in job.get("http_sd_configs", []):
            sd["refresh_interval"] = "1s"
    (tmp / "rules").mkdir()
    (tmp / "rules/jetfleet.yml").write_text((COMPOSE / "prometheus/rules/jetfleet.yml").read_text())
    with backend.admin() as admin:  # Prometheus holds a `read` token, as in compose/fleet.yaml
        created = admin.post("/api/v1/tokens", json={"name": f"prometheus-{tmp.name}", "scope": "read"})
        created.raise_for_status()
    (tmp / "read-token").write_text(created.json()["token"])
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def fake_tegrastats(tmp: Path) -> Path:
    wrapper = tmp / "tegrastats"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_TEGRASTATS} --lines {ORIN_LINES} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def prometheus(sqlite_backend: BackendProcess, tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus", ["prometheus"])
    config = agent_config(tmp_path, sqlite_backend, "orin-1", host_root=str(ORIN),
                          tegrastats_path=str(fake_tegrastats(tmp_path)), heartbeat_interval=1)
    agent = start_agent(config)
    try:
        with running_prometheus(binary, prometheus_files(tmp_path, sqlite_backend), tmp_path) as url:
            yield url
    finally:
        agent.stop()


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_promtool_accepts_config_and_rules(sqlite_backend: BackendProcess, tmp_path: Path) -> None:
    promtool = require_binary("promtool", ["prometheus"])
    config = prometheus_files(tmp_path, sqlite_backend)
    for args in (["check", "config", str(config)], ["check", "rules", str(tmp_path / "rules/jetfleet.yml")]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_committed_dashboards_match_their_source() -> None:
    for name, text in dashboards.render_all().items():
        assert (COMPOSE / "grafana/dashboards" / name).read_text() == text, "run compose/grafana/dashboards.py"


def test_every_dashboard_query_returns_data_from_discovered_targets(prometheus: str) -> None:
    up = wait_until(lambda: query(prometheus, 'up{job="jetfleet-agent"} == 1'), 60, what="agent scraped")
    assert isinstance(up, list)
    assert up[0]["metric"]["device_name"] == "orin-1"  # labels from the registry
    panels = [p for d in dashboards.DASHBOARDS if d.uid == "jetfleet-fleet" for p in d.panels]
    for panel in panels:
        expr = panel.expr.replace("$device", ".*")
        wait_until(lambda e=expr: query(prometheus, e), 60, what=f"data for panel '{panel.title}': {expr}")


def test_alert_rules_evaluate_without_errors(prometheus: str) -> None:
    def rules_evaluated() -> list[dict[str, Any]]:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else []

    rules = wait_until(rules_evaluated, 60, what="rules evaluated")
    assert isinstance(rules, list)
    assert {r["name"] for r in rules} >= {"JetsonAgentDown", "JetsonHot", "FleetDevicesOffline",
                                          "ControlPlaneWithoutLeader", "ControlPlaneSettingsMismatch"}
    assert all(r["health"] == "ok" for r in rules), json.dumps(rules, indent=1)


@contextmanager
def running_prometheus(binary: str, config: Path, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus on a free loopback port with ``config``; yields its URL once ready, stopped by PID."""
    port = free_port()
    prom = ManagedProcess([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "prometheus.log")
    try:
        prom.wait_http(f"http://127.0.0.1:{port}/-/ready", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        prom.stop()

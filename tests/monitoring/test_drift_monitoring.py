"""The drift dashboard and alert rule against a real Prometheus scraping a control plane whose inputs drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.test_drift import drifting_model
from tests.monitoring.test_prometheus import dashboards, prometheus_files, query, running_prometheus
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import wait_until
from tests.support.system import require_binary


@pytest.fixture
def drifting(tmp_path: Path) -> Iterator[tuple[BackendProcess, str]]:
    """A control plane (evaluating every 0.5 s) where feature 1 of a model's inputs drifts."""
    with backend_server(tmp_path / "cp", extra_args=["--drift-interval", "0.5s"]) as backend:
        yield backend, drifting_model(backend, tmp_path, feature=1, shift=1.5, windows=4, rows=300, seed=3).name


@pytest.fixture
def prometheus(drifting: tuple[BackendProcess, str], tmp_path: Path) -> Iterator[str]:
    binary = require_binary("prometheus", ["prometheus"])
    with running_prometheus(binary, prometheus_files(tmp_path, drifting[0]), tmp_path) as url:
        yield url


def test_drift_dashboard_queries_return_the_drifting_feature(prometheus: str,
                                                             drifting: tuple[BackendProcess, str]) -> None:
    model = drifting[1]
    drift = next(d for d in dashboards.DASHBOARDS if d.uid == "jetfleet-drift")
    for panel in drift.panels:
        expr = panel.expr.replace("$model", model)
        wait_until(lambda e=expr: query(prometheus, e), 60, what=f"data for panel '{panel.title}': {expr}")
    ratio = next(p for p in drift.panels if p.title.startswith("KS / threshold")).expr.replace("$model", model)
    above = {r["metric"]["index"] for r in query(prometheus, f"({ratio}) > 1")}
    assert above == {"1"}
    assert [r["value"][1] for r in query(prometheus, f'jetfleet_drift_detected{{model="{model}"}}')] == ["1"]


def test_the_drift_alert_becomes_active(prometheus: str, drifting: tuple[BackendProcess, str]) -> None:
    def drift_alert() -> list[dict[str, Any]]:
        alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ModelInputDrift"]

    active = wait_until(drift_alert, 60, what="ModelInputDrift pending or firing")
    assert isinstance(active, list)
    assert active[0]["labels"]["model"] == drifting[1] and active[0]["labels"]["version"] == "1"
    assert active[0]["state"] in ("pending", "firing")

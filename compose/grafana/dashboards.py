"""Grafana dashboards as code: ``python compose/grafana/dashboards.py`` rewrites dashboards/*.json.

Each panel is one PromQL query; tests run every query against a real Prometheus that scrapes real
jetfleet processes, so a renamed metric breaks the build, not the operator's dashboard.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "jetfleet-prometheus"}
DEVICE = '{device_name=~"$device"}'


@dataclass(frozen=True)
class Panel:
    title: str
    expr: str
    unit: str = "short"
    kind: str = "timeseries"
    legend: str = "{{device_name}}"
    width: int = 12
    thresholds: tuple[tuple[str, float | None], ...] = ()
    stacked: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: list[Panel]
    variables: list[dict[str, Any]] = field(default_factory=list)


def device_variable(metric: str) -> dict[str, Any]:
    return {"name": "device", "label": "Device", "type": "query", "datasource": DATASOURCE,
            "query": {"query": f"label_values({metric}, device_name)", "refId": "device"},
            "definition": f"label_values({metric}, device_name)", "refresh": 2, "multi": True,
            "includeAll": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}}


FLEET = Dashboard(
    uid="jetfleet-fleet",
    title="jetfleet / Fleet",
    variables=[device_variable("jetfleet_device_info")],
    panels=[
        Panel("Devices online", 'jetfleet_backend_devices{status="online"}', kind="stat", legend="online", width=4),
        Panel("Devices offline", 'jetfleet_backend_devices{status="offline"}', kind="stat", legend="offline",
              width=4, thresholds=(("green", None), ("red", 1))),
        Panel("Heartbeats received", "rate(jetfleet_backend_heartbeats_received_total[1m])", unit="reqps",
              legend="heartbeats/s", width=4),
        Panel("Heartbeat age", f"time() - jetfleet_last_heartbeat_timestamp_seconds{DEVICE}", unit="s", width=12,
              thresholds=(("green", None), ("orange", 90), ("red", 300))),
        Panel("Devices", f"jetfleet_device_info{DEVICE}", kind="table", legend="", width=24),
        Panel("CPU", f"jetfleet_cpu_utilization_ratio{DEVICE}", unit="percentunit"),
        Panel("CPU per core", f"jetfleet_cpu_core_utilization_ratio{DEVICE}", unit="percentunit",
              legend="{{device_name}} cpu{{cpu}}"),
        Panel("Memory used", f"jetfleet_memory_used_bytes{DEVICE} / jetfleet_memory_total_bytes{DEVICE}",
              unit="percentunit"),
        Panel("Swap used", f"jetfleet_swap_used_bytes{DEVICE}", unit="bytes"),
        Panel("GPU", f"jetfleet_gpu_utilization_ratio{DEVICE}", unit="percentunit",
              legend="{{device_name}} gpu{{gpu}}"),
        Panel("GPU frequency", f"jetfleet_gpu_frequency_hertz{DEVICE}", unit="hertz",
              legend="{{device_name}} gpu{{gpu}}"),
        Panel("EMC (memory controller)", f"jetfleet_emc_utilization_ratio{DEVICE}", unit="percentunit"),
        Panel("Temperatures", f"jetfleet_temperature_celsius{DEVICE}", unit="celsius",
              legend="{{device_name}} {{sensor}}", thresholds=(("green", None), ("orange", 85), ("red", 95))),
        Panel("Board power", f"jetfleet_board_power_watts{DEVICE}", unit="watt",
              legend="{{device_name}} ({{method}})"),
        Panel("Power per rail", f"jetfleet_power_watts{DEVICE}", unit="watt", stacked=True,
              legend="{{device_name}} {{rail}}"),
        Panel("Disk used", f"jetfleet_disk_used_bytes{DEVICE} / jetfleet_disk_total_bytes{DEVICE}",
              unit="percentunit", legend="{{device_name}} {{mountpoint}}"),
        Panel("Power mode", f"jetfleet_power_mode_info{DEVICE}", kind="table", legend="", width=12),
        Panel("Metric sources up", f"jetfleet_collector_up{DEVICE}", legend="{{device_name}} {{source}}"),
        Panel("Agent memory (RSS)", 'process_resident_memory_bytes{job="jetfleet-agent",device_name=~"$device"}',
              unit="bytes"),
        Panel("Heartbeat failures", f"increase(jetfleet_heartbeat_failures_total{DEVICE}[5m])"),
    ],
)

MODEL = '{model=~"$model"}'
FEATURE = "{{model}} v{{version}} {{input}}[{{index}}]"


def model_variable(metric: str) -> dict[str, Any]:
    return {"name": "model", "label": "Model", "type": "query", "datasource": DATASOURCE,
            "query": {"query": f"label_values({metric}, model)", "refId": "model"},
            "definition": f"label_values({metric}, model)", "refresh": 2, "multi": True,
            "includeAll": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}}


BY_FEATURE = "max by (model, version, input, index, statistic)"  # every control-plane replica exports the same


def drift_score(statistic: str) -> str:
    return f'{BY_FEATURE} (jetfleet_drift_score{{model=~"$model",statistic="{statistic}"}})'


DRIFT = Dashboard(
    uid="jetfleet-drift",
    title="jetfleet / Model input drift",
    variables=[model_variable("jetfleet_drift_score")],
    panels=[
        Panel("Versions drifting", f"max by (model, version) (jetfleet_drift_detected{MODEL})",
              legend="{{model}} v{{version}}", width=24,
              thresholds=(("green", None), ("red", 1))),
        # Over 1 = above the null-calibrated threshold for the window sizes (docs/jobs-and-drift.md).
        Panel("KS / threshold per feature",
              f'{drift_score("ks")} / {BY_FEATURE} (jetfleet_drift_threshold{{model=~"$model",statistic="ks"}})',
              legend=FEATURE, width=24, thresholds=(("green", None), ("red", 1))),
        Panel("PSI per feature", drift_score("psi"), legend=FEATURE),
        Panel("Jensen-Shannon distance per feature", drift_score("js"), legend=FEATURE),
        Panel("KS statistic per feature", drift_score("ks"), legend=FEATURE),
        Panel("Wasserstein (reference sd) per feature", drift_score("wasserstein"), legend=FEATURE),
    ],
)

DASHBOARDS = [FLEET, DRIFT]


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    height = 8 if panel.kind != "stat" else 4
    steps = [{"color": color, "value": value} for color, value in panel.thresholds] or [
        {"color": "green", "value": None}]
    target: dict[str, Any] = {"refId": "A", "expr": panel.expr, "legendFormat": panel.legend,
                              "datasource": DATASOURCE}
    if panel.kind == "table":
        target.update(instant=True, format="table")
    custom = {"stacking": {"mode": "normal"}, "fillOpacity": 30} if panel.stacked else {}
    return {"id": panel_id, "type": panel.kind, "title": panel.title, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": panel.width, "h": height}, "targets": [target],
            "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom,
                                         "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
            "options": {}}


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    panels, x, y = [], 0, 0
    for number, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(panel_json(panel, number, x, y))
        x += panel.width
    return {"uid": dashboard.uid, "title": dashboard.title, "tags": ["jetfleet"], "timezone": "browser",
            "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": dashboard.variables}, "panels": panels}


def render_all() -> dict[str, str]:
    return {f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render_all().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What ``jetfleet agent metrics`` and ``jetfleet agent parse-tegrastats`` print."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .collector import MetricsCollector
from .model import MetricsSnapshot
from .tegrastats_parser import parse_tegrastats_line

CPU_WINDOW_SECONDS = 0.5
FIRST_SAMPLE_TIMEOUT_SECONDS = 3.0


def parse_stream(lines: Iterable[str], write: Callable[[str], None]) -> int:
    """One JSON object per non-blank line (a sample or ``{"error": ...}``); returns the number of errors."""
    errors = 0
    for line in lines:
        if not line.strip():
            continue
        result = parse_tegrastats_line(line)
        errors += "error" in (payload := result.to_json())
        write(json.dumps(payload) + "\n")
    return errors


def take_snapshot(*, host_root: Path, tegrastats_path: str | None, disk_paths: Sequence[Path]) -> MetricsSnapshot:
    """One snapshot over a short CPU window, waiting briefly for tegrastats' first line when it runs."""
    collector = MetricsCollector.detect(host_root=host_root, tegrastats_path=tegrastats_path,
                                        disk_paths=disk_paths, tegrastats_interval_ms=1000)
    with collector:
        deadline = time.monotonic() + FIRST_SAMPLE_TIMEOUT_SECONDS
        time.sleep(CPU_WINDOW_SECONDS)
        snapshot = collector.snapshot()
        while not all(status.up for status in snapshot.sources.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
            snapshot = collector.snapshot()
        return snapshot


def snapshot_json(snapshot: MetricsSnapshot) -> dict[str, Any]:
    data = dataclasses.asdict(snapshot)
    data["board_power_watts"] = snapshot.board_power_watts
    data["board_power_method"] = snapshot.board_power_method
    return data


def print_snapshot(snapshot: MetricsSnapshot) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table("metric", "value", title="System", title_justify="left")
    for name, value in _summary_rows(snapshot):
        summary.add_row(name, value)
    console.print(summary)
    for title, columns, rows in _detail_tables(snapshot):
        if rows:
            table = Table(*columns, title=title, title_justify="left")
            for row in rows:
                table.add_row(*row)
            console.print(table)


def _summary_rows(s: MetricsSnapshot) -> list[tuple[str, str]]:
    return [
        ("CPU", _pct(s.cpu_utilization_ratio)),
        ("memory", f"{_gib(s.memory_used_bytes)} / {_gib(s.memory_total_bytes)}"),
        ("swap", f"{_gib(s.swap_used_bytes)} / {_gib(s.swap_total_bytes)}"),
        ("EMC", _pct(s.emc_utilization_ratio)),
        ("board power", f"{s.board_power_watts:.2f} W ({s.board_power_method})" if s.board_power_watts else "-"),
        ("power mode", f"{s.power_mode_name or '?'} (id {s.power_mode_id})" if s.power_mode_id else "-"),
        ("uptime", f"{s.uptime_seconds / 3600:.1f} h" if s.uptime_seconds is not None else "-"),
    ]


def _detail_tables(s: MetricsSnapshot) -> list[tuple[str, Sequence[str], list[Sequence[str]]]]:
    return [
        ("CPU cores", ("cpu", "load", "frequency"),
         [(str(c.index), _pct(c.utilization_ratio) if c.online else "off", _mhz(c.frequency_hertz))
          for c in s.cpu_cores]),
        ("Disks", ("mountpoint", "used", "total"),
         [(d.mountpoint, _gib(d.used_bytes), _gib(d.total_bytes)) for d in s.disks]),
        ("GPUs", ("gpu", "name", "load", "frequency", "memory", "temperature", "power"),
         [(g.index, g.name, _pct(g.utilization_ratio), _mhz(g.frequency_hertz),
           f"{_gib(g.memory_used_bytes)} / {_gib(g.memory_total_bytes)}" if g.memory_total_bytes else "-",
           f"{g.temperature_celsius:.1f} °C" if g.temperature_celsius is not None else "-",
           f"{g.power_watts:.2f} W" if g.power_watts is not None else "-") for g in s.gpus]),
        ("Temperatures", ("sensor", "°C"), [(k, f"{v:.1f}") for k, v in sorted(s.temperatures_celsius.items())]),
        ("Power rails", ("rail", "now", "average"),
         [(k, f"{r.current_watts:.3f} W", f"{r.average_watts:.3f} W" if r.average_watts is not None else "-")
          for k, r in sorted(s.power_rails.items())]),
        ("Sources", ("source", "status"),
         [(k, "up" if v.up else f"down: {v.error}") for k, v in sorted(s.sources.items())]),
    ]


def _pct(ratio: float | None) -> str:
    return f"{ratio * 100:.1f} %" if ratio is not None else "-"


def _gib(value: int | None) -> str:
    return f"{value / 2**30:.2f} GiB" if value is not None else "-"


def _mhz(hertz: float | None) -> str:
    return f"{hertz / 1e6:.0f} MHz" if hertz is not None else "-"

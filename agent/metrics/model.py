"""The metrics snapshot (full detail, for /metrics and ``agent metrics``) and its compact heartbeat summary.

Units are the Prometheus base units: ratios 0..1, bytes, hertz, celsius, watts, seconds. Sensor and rail
names are lower-case so that every source, the exporter and the heartbeat agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from jetfleet.protocol import Metrics

# A heartbeat's metrics stay within 1 KB of JSON even on a machine with many sensors (an AGX Orin has about
# 8 online zones and 4 rails): at most this many of each, and only as many as fit, in name order.
HEARTBEAT_MAX_JSON_BYTES = 1024
HEARTBEAT_MAX_TEMPERATURES = 12
HEARTBEAT_MAX_RAILS = 8
BOARD_INPUT_RAILS = ("vdd_in", "pom_5v_in")


@dataclass(frozen=True)
class CpuCore:
    index: int
    online: bool
    utilization_ratio: float | None = None
    frequency_hertz: float | None = None


@dataclass(frozen=True)
class DiskUsage:
    mountpoint: str
    total_bytes: int
    used_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class GpuSample:
    index: str
    name: str
    type: Literal["integrated", "discrete"]
    utilization_ratio: float | None = None
    frequency_hertz: float | None = None
    memory_used_bytes: int | None = None  # discrete GPUs only: Jetson memory is unified
    memory_total_bytes: int | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    energy_joules_total: float | None = None


@dataclass(frozen=True)
class RailPower:
    current_watts: float
    average_watts: float | None = None  # tegrastats/jtop: the average since the tool started
    voltage_volts: float | None = None
    current_amperes: float | None = None


@dataclass(frozen=True)
class SourceStatus:
    up: bool
    error: str | None = None
    errors_total: int = 0
    last_success_timestamp_seconds: float | None = None


@dataclass(frozen=True)
class Reading:
    """What one source contributed to a snapshot; ``None``/empty means "this source does not know"."""

    cpu_cores: tuple[CpuCore, ...] = ()
    cpu_utilization_ratio: float | None = None
    memory_total_bytes: int | None = None
    memory_used_bytes: int | None = None
    memory_available_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    disks: tuple[DiskUsage, ...] = ()
    gpus: tuple[GpuSample, ...] = ()
    emc_utilization_ratio: float | None = None
    emc_frequency_hertz: float | None = None
    temperatures_celsius: Mapping[str, float] = field(default_factory=dict)
    power_rails: Mapping[str, RailPower] = field(default_factory=dict)
    power_mode_id: str | None = None
    power_mode_name: str | None = None
    uptime_seconds: float | None = None


@dataclass(frozen=True)
class MetricsSnapshot(Reading):
    """All sources merged at one moment, plus each source's status."""

    timestamp: float = 0.0
    sources: Mapping[str, SourceStatus] = field(default_factory=dict)

    @property
    def board_power_watts(self) -> float | None:
        """The board input rail (``VDD_IN``/``POM_5V_IN``) if there is one, else the sum of all rails."""
        for rail in BOARD_INPUT_RAILS:
            if rail in self.power_rails:
                return self.power_rails[rail].current_watts
        if not self.power_rails:
            return None
        return sum(rail.current_watts for rail in self.power_rails.values())

    @property
    def board_power_method(self) -> Literal["rail", "sum"] | None:
        if any(rail in self.power_rails for rail in BOARD_INPUT_RAILS):
            return "rail"
        return "sum" if self.power_rails else None

    def to_heartbeat(self) -> Metrics:
        """The compact summary a heartbeat carries; the first disk is the one reported."""
        disk = self.disks[0] if self.disks else None
        gpu_loads = [gpu.utilization_ratio for gpu in self.gpus if gpu.utilization_ratio is not None]
        base = Metrics(
            cpu_utilization_ratio=_ratio(self.cpu_utilization_ratio),
            memory_used_bytes=self.memory_used_bytes,
            memory_total_bytes=self.memory_total_bytes,
            swap_used_bytes=self.swap_used_bytes,
            swap_total_bytes=self.swap_total_bytes,
            disk_used_bytes=disk.used_bytes if disk else None,
            disk_total_bytes=disk.total_bytes if disk else None,
            gpu_utilization_ratio=_ratio(max(gpu_loads)) if gpu_loads else None,
            uptime_seconds=round(self.uptime_seconds, 1) if self.uptime_seconds is not None else None,
        )
        budget = HEARTBEAT_MAX_JSON_BYTES - len(base.model_dump_json())
        temperatures = {name: round(value, 2) for name, value in sorted(self.temperatures_celsius.items())}
        rails = {name: round(rail.current_watts, 3) for name, rail in sorted(self.power_rails.items())}
        temperatures, budget = _fitting(temperatures, HEARTBEAT_MAX_TEMPERATURES, budget)
        rails, _ = _fitting(rails, HEARTBEAT_MAX_RAILS, budget)
        return base.model_copy(update={"temperatures_celsius": temperatures, "power_watts": rails})


def _fitting(values: dict[str, float], limit: int, budget: int) -> tuple[dict[str, float], int]:
    """The first ``limit`` entries whose JSON (``"name":value,``) fits in ``budget`` characters; what is left."""
    kept: dict[str, float] = {}
    for name, value in values.items():
        cost = len(json.dumps(name)) + len(json.dumps(value)) + 2
        if len(kept) >= limit or cost > budget:
            break
        kept[name] = value
        budget -= cost
    return kept, budget


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(min(max(value, 0.0), 1.0), 4)

"""A thin adapter over jtop (jetson-stats), used only when it is installed and its daemon's socket exists.

jetson-stats is AGPL-3.0: it is an optional extra, never a hard dependency, and ``jtop`` is imported only
inside ``JtopSource.detect``. Conversions: percent -> ratio, kHz -> Hz, mW/mV/mA -> W/V/A.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .model import GpuSample, RailPower, Reading
from .source import SourceUnavailable

JTOP_SOCKET = Path("/run/jtop.sock")


class JtopSource:
    name = "jtop"

    def __init__(self, module: Any, interval: float = 1.0) -> None:
        self._module = module
        self._interval = interval
        self._jetson: Any = None
        self._lock = threading.Lock()

    @classmethod
    def detect(cls, *, socket: Path = JTOP_SOCKET, module: Any = None, interval: float = 1.0) -> JtopSource | None:
        if not socket.exists():
            return None
        if module is None:
            try:
                import jtop
            except ImportError:
                return None
            module = jtop
        return cls(module, interval)

    def start(self) -> None:
        pass  # connects on the first read, so a daemon that is down does not stop the agent from starting

    def close(self) -> None:
        with self._lock:
            jetson, self._jetson = self._jetson, None
        if jetson is not None:
            jetson.close()

    def read(self) -> Reading:
        jetson = self._connected()
        emc = jetson.memory.get("EMC", {}) if jetson.memory else {}
        return Reading(
            gpus=tuple(_gpu(index, name, gpu) for index, (name, gpu) in enumerate(dict(jetson.gpu or {}).items())),
            emc_utilization_ratio=emc["val"] / 100 if emc.get("online") and "val" in emc else None,
            emc_frequency_hertz=emc["cur"] * 1000.0 if emc.get("online") and "cur" in emc else None,
            temperatures_celsius=_temperatures(jetson.temperature or {}),
            power_rails=_rails((jetson.power or {}).get("rail", {})),
        )

    def _connected(self) -> Any:
        with self._lock:
            if self._jetson is None:
                jetson = self._module.jtop(interval=self._interval)
                try:
                    jetson.start()
                except Exception as exc:  # JtopException: service down, permissions, version mismatch
                    raise SourceUnavailable(f"jtop: {exc}") from exc
                self._jetson = jetson
            return self._jetson


def _gpu(index: int, name: str, gpu: Mapping[str, Any]) -> GpuSample:
    load = gpu.get("status", {}).get("load")
    freq_khz = gpu.get("freq", {}).get("cur")
    return GpuSample(index=str(index), name=str(name),
                     type="discrete" if gpu.get("type") == "discrete" else "integrated",
                     utilization_ratio=load / 100 if load is not None else None,
                     frequency_hertz=freq_khz * 1000.0 if freq_khz is not None else None)


def _temperatures(sensors: Mapping[str, Any]) -> dict[str, float]:
    temperatures = {}
    for name, sensor in sensors.items():
        value = sensor.get("temp")
        if not sensor.get("online", True) or value is None or value <= -256 or name.lower().startswith("pmic"):
            continue
        temperatures[name.lower()] = float(value)
    return temperatures


def _rails(rails: Mapping[str, Any]) -> dict[str, RailPower]:
    result = {}
    for name, rail in rails.items():
        if not rail.get("online", True) or "power" not in rail or name == "NC":
            continue
        result[name.lower()] = RailPower(
            current_watts=rail["power"] / 1000,
            average_watts=rail["avg"] / 1000 if "avg" in rail else None,
            voltage_volts=rail["volt"] / 1000 if "volt" in rail else None,
            current_amperes=rail["curr"] / 1000 if "curr" in rail else None,
        )
    return result

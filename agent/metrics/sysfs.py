"""The sysfs source: Jetson GPU load (devfreq), thermal zones, INA3221 power rails and the nvpmodel mode.

Readable without root, no daemon. Paths are under ``host_root`` (``<root>/sys/...``). Devices are found by
driver/devfreq paths, never by a fixed ``hwmonN``/``thermal_zoneN`` index (those change across boots).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jetfleet.agent import jetson

from .model import GpuSample, RailPower, Reading
from .source import SourceUnavailable

GPU_OF_NODE_NAMES = frozenset({"gv11b", "gp10b", "ga10b", "gb10b", "gm20b", "gpu"})
# When no devfreq node says which device is the GPU (older kernels, early boot), these hold its load.
FIXED_GPU_LOAD_PATHS = ("devices/platform/bus@0/17000000.gpu/load", "devices/platform/gpu.0/load",
                        "devices/gpu.0/load", "devices/17000000.ga10b/load", "devices/17000000.gv11b/load",
                        "devices/17000000.gp10b/load", "devices/57000000.gpu/load")
OFFLINE_MILLICELSIUS = -256000
# Jetson zone types -> the names tegrastats prints: cpu-thermal, CPU-therm -> cpu; Tdiode_tegra -> tdiode.
_ZONE_SUFFIXES = ("-thermal", "-therm", "_tegra", "-fan-est", "-die")
_DROPPED_SENSOR_PREFIXES = ("pmic",)


@dataclass(frozen=True)
class GpuNode:
    name: str
    load_path: Path | None
    freq_path: Path | None


def read_int(path: Path) -> int | None:
    text = jetson.read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def find_gpu_nodes(sys_root: Path) -> list[GpuNode]:
    """GPU devfreq nodes whose ``device/of_node/name`` is a Jetson GPU; else a fixed ``load`` file."""
    nodes = []
    for node in _children(sys_root / "class/devfreq"):
        of_name = jetson.read_text(node / "device/of_node/name")
        if of_name is None or not (of_name in GPU_OF_NODE_NAMES or "gpu" in of_name):
            continue
        load = (node / "device").resolve() / "load"  # the load file sits on the device, not the devfreq node
        nodes.append(GpuNode(name=of_name, load_path=load if load.is_file() else None, freq_path=node / "cur_freq"))
    if nodes:
        return nodes
    for relative in FIXED_GPU_LOAD_PATHS:
        if (sys_root / relative).is_file():
            return [GpuNode(name="gpu", load_path=sys_root / relative, freq_path=None)]
    return []


def read_gpus(nodes: list[GpuNode]) -> tuple[GpuSample, ...]:
    samples = []
    for index, node in enumerate(nodes):
        load = read_int(node.load_path) if node.load_path else None
        freq = read_int(node.freq_path) if node.freq_path else None
        if load is None and freq is None:
            continue  # its files are gone (device removed, /sys unmounted): no made-up sample
        samples.append(GpuSample(index=str(index), name=node.name, type="integrated",
                                 utilization_ratio=load / 1000 if load is not None else None,
                                 frequency_hertz=float(freq) if freq is not None else None))
    return tuple(samples)


def sensor_name(zone_type: str) -> str:
    name = zone_type.strip().lower()
    for suffix in _ZONE_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def read_thermal_zones(sys_root: Path) -> dict[str, float]:
    """``{sensor: celsius}``; unreadable and ``-256`` (offline) zones and the PMIC dummy are left out."""
    temperatures: dict[str, float] = {}
    for zone in _children(sys_root / "class/thermal", "thermal_zone*", key=_trailing_number):
        zone_type = jetson.read_text(zone / "type")
        millicelsius = read_int(zone / "temp")
        if not zone_type or millicelsius is None or millicelsius <= OFFLINE_MILLICELSIUS:
            continue
        name = sensor_name(zone_type)
        if name.startswith(_DROPPED_SENSOR_PREFIXES):
            continue
        unique, suffix = name, 1
        while unique in temperatures:
            unique, suffix = f"{name}_{suffix}", suffix + 1
        temperatures[unique] = millicelsius / 1000
    return temperatures


def read_ina3221_rails(sys_root: Path) -> dict[str, RailPower]:
    """INA3221 rails by driver path: hwmon ``in/curr`` (JP5+) or the JP4 ``ina3221x`` iio device."""
    rails: dict[str, RailPower] = {}
    for chip in _children(sys_root / "bus/i2c/drivers/ina3221"):
        for hwmon in _children(chip / "hwmon", "hwmon*"):
            for label_path in _children(hwmon, "in*_label", key=_trailing_number):
                channel = label_path.name.removeprefix("in").removesuffix("_label")
                _add_rail(rails, jetson.read_text(label_path), read_int(hwmon / f"in{channel}_input"),
                          read_int(hwmon / f"curr{channel}_input"), None)
    for chip in _children(sys_root / "bus/i2c/drivers/ina3221x"):
        for iio in _children(chip, "iio:device*"):
            for label_path in _children(iio, "rail_name_*", key=_trailing_number):
                channel = label_path.name.removeprefix("rail_name_")
                _add_rail(rails, jetson.read_text(label_path), read_int(iio / f"in_voltage{channel}_input"),
                          read_int(iio / f"in_current{channel}_input"), read_int(iio / f"in_power{channel}_input"))
    return rails


def _add_rail(rails: dict[str, RailPower], label: str | None, millivolts: int | None, milliamperes: int | None,
              milliwatts: int | None) -> None:
    if not label or label == "NC" or label.lower().startswith("sum of shunt"):
        return
    if milliwatts is not None:
        watts = milliwatts / 1000
    elif millivolts is not None and milliamperes is not None:
        watts = millivolts * milliamperes / 1e6  # these kernels have no power node: W = mV x mA / 1e6
    else:
        return
    rails[label.lower()] = RailPower(
        current_watts=watts,
        voltage_volts=millivolts / 1000 if millivolts is not None else None,
        current_amperes=milliamperes / 1000 if milliamperes is not None else None,
    )


def _children(directory: Path, pattern: str = "*",
              key: Callable[[Path], tuple[int, str]] | None = None) -> list[Path]:
    try:
        paths = list(directory.glob(pattern))
    except OSError:
        return []
    return sorted(paths, key=key) if key else sorted(paths, key=lambda path: path.name)


def _trailing_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.name)
    return (int(digits[-1]) if digits else -1, path.name)


class SysfsSource:
    name = "sysfs"

    def __init__(self, host_root: Path, *, reprobe_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host_root = host_root
        self.sys_root = host_root / "sys"
        self._reprobe_seconds = reprobe_seconds
        self._clock = clock
        self._gpu_nodes: list[GpuNode] = []
        self._probed_at: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def detect(cls, host_root: Path) -> SysfsSource | None:
        """A source when the host has any of: a Jetson GPU, thermal zones, INA3221 rails, an nvpmodel mode."""
        source = cls(host_root)
        reading = source._collect()
        found = reading.gpus or reading.temperatures_celsius or reading.power_rails or reading.power_mode_id
        return source if found else None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> Reading:
        reading = self._collect()
        if not (reading.gpus or reading.temperatures_celsius or reading.power_rails):
            raise SourceUnavailable(f"no GPU load, thermal zone or INA3221 rail is readable under {self.sys_root}")
        return reading

    def _collect(self) -> Reading:
        mode = jetson.power_mode(self.host_root)
        return Reading(gpus=read_gpus(self._gpus()), temperatures_celsius=read_thermal_zones(self.sys_root),
                       power_rails=read_ina3221_rails(self.sys_root),
                       power_mode_id=mode.id if mode else None, power_mode_name=mode.name if mode else None)

    def _gpus(self) -> list[GpuNode]:
        # The GPU devfreq node can appear late at boot: look again now and then until it is found.
        with self._lock:
            now = self._clock()
            if not self._gpu_nodes and (self._probed_at is None or now - self._probed_at >= self._reprobe_seconds):
                self._gpu_nodes = find_gpu_nodes(self.sys_root)
                self._probed_at = now
            return self._gpu_nodes

"""A pure parser for one line of ``tegrastats`` output, for every format in shared/notes/jetson.md.

JetPack 4 (no timestamp, unitless mW power), 5 (``MM-DD-YYYY HH:MM:SS``, ``mW``), 6 (lower-case sensors),
7 (``cur/max`` temperatures, ``cur/avg/max`` power) and Thor (GPC frequencies without utilisation). Tokens
are matched independently of their position; ``-256C`` sensors, the ``PMIC`` dummy and ``NC`` rails are
dropped. ``parse_tegrastats_line`` never raises: a line without a ``RAM`` field is an ``UnparsedLine``.
Every digit run is bounded so no number can overflow a conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .model import CpuCore, GpuSample, RailPower, Reading

MIB = 1024 * 1024
_SIZE_FACTORS = {"k": 1024, "M": MIB, "G": 1024 * MIB}
_NUM = r"\d{1,9}(?:\.\d{1,6})?"
_SIGNED = r"-?\d{1,6}(?:\.\d{1,6})?"

_TIMESTAMP_RE = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})(?!\S)")
_RAM_RE = re.compile(r"\bRAM (\d{1,12})/(\d{1,12})([kMG])B")
_SWAP_RE = re.compile(r"\bSWAP (\d{1,12})/(\d{1,12})([kMG])B")
_CPU_RE = re.compile(r"\bCPU \[([^\]]{0,4000})\](?:@(\d{1,7}))?")
_CPU_ENTRY_RE = re.compile(r"(\d{1,5})%(?:@(\d{1,7}))?")
_GR3D_RE = re.compile(r"\bGR3D_FREQ (?:(\d{1,5})%)?(?:@(?:\[([\d,]{0,400})\]|(\d{1,7})))?")
_EMC_RE = re.compile(r"\bEMC_FREQ (?:(\d{1,5})%)?(?:@(\d{1,7}))?")
_TEMP_RE = re.compile(rf"(?<![\w@])(\w{{1,40}})@({_SIGNED})C(?:/({_SIGNED})C)?(?!\w)")
_RAIL_RE = re.compile(
    rf"(?<![\w/.])([A-Za-z]\w{{0,40}}) ({_NUM})(mW|W)?/({_NUM})(mW|W)?(?:/({_NUM})(mW|W)?)?(?![\w./])"
)

OFFLINE_CELSIUS = -256.0
DROPPED_SENSORS = frozenset({"pmic"})
DROPPED_RAILS = frozenset({"NC"})
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})


@dataclass(frozen=True)
class RailSample:
    current_watts: float
    average_watts: float
    max_watts: float | None = None  # JetPack 7 only


@dataclass(frozen=True)
class TegrastatsSample:
    ram_used_bytes: int
    ram_total_bytes: int
    timestamp: str | None = None
    swap_used_bytes: int | None = None
    swap_total_bytes: int | None = None
    cpu_util_ratio: tuple[float | None, ...] = ()
    cpu_freq_hz: tuple[float | None, ...] = ()
    cpu_online: tuple[bool, ...] = ()
    gpu_util_ratio: float | None = None
    gpu_freq_hz: float | None = None
    emc_util_ratio: float | None = None
    emc_freq_hz: float | None = None
    temperatures_celsius: dict[str, float] = field(default_factory=dict)
    power_watts: dict[str, RailSample] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``agent parse-tegrastats`` object: exactly these keys."""
        return {
            "timestamp": self.timestamp,
            "ram_used_bytes": self.ram_used_bytes,
            "ram_total_bytes": self.ram_total_bytes,
            "swap_used_bytes": self.swap_used_bytes,
            "swap_total_bytes": self.swap_total_bytes,
            "cpu_util_ratio": list(self.cpu_util_ratio),
            "cpu_freq_hz": list(self.cpu_freq_hz),
            "gpu_util_ratio": self.gpu_util_ratio,
            "gpu_freq_hz": self.gpu_freq_hz,
            "emc_util_ratio": self.emc_util_ratio,
            "temperatures_celsius": dict(self.temperatures_celsius),
            "power_watts": {name: {"current": rail.current_watts, "average": rail.average_watts}
                            for name, rail in self.power_watts.items()},
        }

    def to_reading(self) -> Reading:
        """This sample as a collector contribution (names lower-cased, GPU as ``gr3d``)."""
        cores = tuple(CpuCore(index=i, online=online, utilization_ratio=util, frequency_hertz=freq)
                      for i, (online, util, freq) in enumerate(zip(self.cpu_online, self.cpu_util_ratio,
                                                                     self.cpu_freq_hz, strict=True)))
        gpus: tuple[GpuSample, ...] = ()
        if self.gpu_util_ratio is not None or self.gpu_freq_hz is not None:
            gpus = (GpuSample(index="0", name="gr3d", type="integrated", utilization_ratio=self.gpu_util_ratio,
                              frequency_hertz=self.gpu_freq_hz),)
        return Reading(
            cpu_cores=cores,
            memory_total_bytes=self.ram_total_bytes, memory_used_bytes=self.ram_used_bytes,
            swap_total_bytes=self.swap_total_bytes, swap_used_bytes=self.swap_used_bytes,
            gpus=gpus, emc_utilization_ratio=self.emc_util_ratio, emc_frequency_hertz=self.emc_freq_hz,
            temperatures_celsius=dict(self.temperatures_celsius),
            power_rails={name.lower(): RailPower(current_watts=rail.current_watts, average_watts=rail.average_watts)
                         for name, rail in self.power_watts.items()},
        )


@dataclass(frozen=True)
class UnparsedLine:
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error}


def parse_tegrastats_line(line: str) -> TegrastatsSample | UnparsedLine:
    ram = _RAM_RE.search(line)
    if ram is None:
        return UnparsedLine(f"not a tegrastats line (no 'RAM used/totalMB' field): {line.strip()[:80]!r}")
    factor = _SIZE_FACTORS[ram.group(3)]
    timestamp = _TIMESTAMP_RE.match(line)
    cpu_online, cpu_util, cpu_freq = _cpus(line)
    gpu_util, gpu_freq = _gpu(line)
    emc = _EMC_RE.search(line)
    return TegrastatsSample(
        timestamp=timestamp.group(1) if timestamp else None,
        ram_used_bytes=int(ram.group(1)) * factor,
        ram_total_bytes=int(ram.group(2)) * factor,
        **_swap(line),
        cpu_online=cpu_online, cpu_util_ratio=cpu_util, cpu_freq_hz=cpu_freq,
        gpu_util_ratio=gpu_util, gpu_freq_hz=gpu_freq,
        emc_util_ratio=_percent(emc.group(1)) if emc else None,
        emc_freq_hz=_mhz(emc.group(2)) if emc else None,
        temperatures_celsius=_temperatures(line),
        power_watts=_rails(line),
    )


def _percent(text: str | None) -> float | None:
    return int(text) / 100 if text is not None else None


def _mhz(text: str | None) -> float | None:
    return int(text) * 1e6 if text is not None else None


def _swap(line: str) -> dict[str, int | None]:
    swap = _SWAP_RE.search(line)
    if swap is None:
        return {"swap_used_bytes": None, "swap_total_bytes": None}
    factor = _SIZE_FACTORS[swap.group(3)]
    return {"swap_used_bytes": int(swap.group(1)) * factor, "swap_total_bytes": int(swap.group(2)) * factor}


def _cpus(line: str) -> tuple[tuple[bool, ...], tuple[float | None, ...], tuple[float | None, ...]]:
    """``CPU [14%@2188,off,...]`` or the old ``CPU [14%,5%]@1420`` (one frequency for all cores)."""
    match = _CPU_RE.search(line)
    if match is None:
        return (), (), ()
    shared_freq = _mhz(match.group(2))
    online: list[bool] = []
    utils: list[float | None] = []
    freqs: list[float | None] = []
    for entry in match.group(1).split(","):
        entry = entry.strip()
        core = _CPU_ENTRY_RE.fullmatch(entry)
        online.append(entry != "off")
        utils.append(_percent(core.group(1)) if core else None)
        own_freq = _mhz(core.group(2)) if core else None
        freqs.append(own_freq if own_freq is not None else shared_freq if core else None)
    return tuple(online), tuple(utils), tuple(freqs)


def _gpu(line: str) -> tuple[float | None, float | None]:
    """``GR3D_FREQ 0%@[f,f]`` (per GPC: the maximum counts), ``0%@f``, ``1%`` (no root), Thor ``@[f,f,f]``."""
    match = _GR3D_RE.search(line)
    if match is None:
        return None, None
    util, gpcs, single = match.groups()
    freqs = [int(part) for part in (gpcs or "").split(",") if part]
    if single is not None:
        freqs.append(int(single))
    return _percent(util), max(freqs) * 1e6 if freqs else None


def _temperatures(line: str) -> dict[str, float]:
    temperatures: dict[str, float] = {}
    for name, current, _max in _TEMP_RE.findall(line):
        value = float(current)
        if name.lower() in DROPPED_SENSORS or value <= OFFLINE_CELSIUS:
            continue
        temperatures[name.lower()] = value
    return temperatures


def _rails(line: str) -> dict[str, RailSample]:
    rails: dict[str, RailSample] = {}
    for name, cur, cur_unit, avg, avg_unit, top, top_unit in _RAIL_RE.findall(line):
        if name in DROPPED_RAILS or name in _NOT_RAILS:
            continue
        # A value without a unit takes its neighbour's (``598mW/598`` seen in the wild); none at all is JP4 mW.
        default_unit = cur_unit or avg_unit or top_unit or "mW"
        rails[name] = RailSample(
            current_watts=_watts(cur, cur_unit or default_unit),
            average_watts=_watts(avg, avg_unit or default_unit),
            max_watts=_watts(top, top_unit or default_unit) if top else None,
        )
    return rails


def _watts(value: str, unit: str) -> float:
    return float(value) / 1000 if unit == "mW" else float(value)

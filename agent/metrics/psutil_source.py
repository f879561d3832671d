"""The psutil source, the base everywhere: CPU (total and per core), memory, swap, disks, uptime."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from jetfleet.agent.jetson import read_text
from jetfleet.errors import ConfigError

from .model import CpuCore, DiskUsage, Reading
from .sysfs import read_int

MIN_CPU_WINDOW_SECONDS = 0.25  # shorter windows are mostly noise: repeat the previous result instead


def busy_ratio(before: Any, after: Any) -> float | None:
    """Busy share of CPU time between two ``cpu_times`` samples (idle and iowait count as idle)."""

    def total(times: Any) -> float:
        # On Linux guest time is already part of user/nice time.
        return float(sum(times)) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)

    def idle(times: Any) -> float:
        return float(times.idle) + getattr(times, "iowait", 0.0)

    elapsed = total(after) - total(before)
    if elapsed <= 0:
        return None
    return min(max(1.0 - (idle(after) - idle(before)) / elapsed, 0.0), 1.0)


def parse_cpu_list(text: str | None) -> list[int] | None:
    """``0-3,6`` -> ``[0, 1, 2, 3, 6]`` (the kernel's ``online``/``present`` format)."""
    if not text:
        return None
    cpus: list[int] = []
    try:
        for part in text.strip().split(","):
            low, _, high = part.partition("-")
            cpus.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        return None
    return cpus


class PsutilSource:
    name = "psutil"

    def __init__(self, host_root: Path, disk_paths: Sequence[Path]) -> None:
        self.cpu_root = host_root / "sys/devices/system/cpu"
        self.disk_paths = tuple(disk_paths)
        self._lock = threading.Lock()
        self._last_at = time.monotonic()
        self._last_total = psutil.cpu_times()
        self._last_cores = psutil.cpu_times(percpu=True)
        self._ratios: tuple[float | None, list[float | None]] = (None, [])

    @classmethod
    def detect(cls, host_root: Path, disk_paths: Sequence[Path]) -> PsutilSource:
        for path in disk_paths:
            if not path.exists():
                raise ConfigError(f"disk path {path} does not exist", key="disk_paths")
        procfs = host_root / "proc"
        if host_root != Path("/") and (procfs / "stat").is_file():
            psutil.PROCFS_PATH = str(procfs)  # a containerised agent reads the host's /proc mounted there
        return cls(host_root, disk_paths)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> Reading:
        total, per_core = self._cpu_ratios()
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return Reading(
            cpu_cores=self._cores(per_core), cpu_utilization_ratio=total,
            memory_total_bytes=int(memory.total), memory_used_bytes=int(memory.total - memory.available),
            memory_available_bytes=int(memory.available),
            swap_total_bytes=int(swap.total), swap_used_bytes=int(swap.used),
            disks=self._disks(), uptime_seconds=max(time.time() - psutil.boot_time(), 0.0),
        )

    def _cpu_ratios(self) -> tuple[float | None, list[float | None]]:
        with self._lock:
            elapsed = time.monotonic() - self._last_at
            if elapsed < MIN_CPU_WINDOW_SECONDS:
                if self._ratios[0] is not None:
                    return self._ratios
                time.sleep(MIN_CPU_WINDOW_SECONDS - elapsed)  # once, at start: a window of a few ms has no ticks
            total, cores = psutil.cpu_times(), psutil.cpu_times(percpu=True)
            ratios = [busy_ratio(before, after) for before, after in zip(self._last_cores, cores, strict=False)]
            if len(cores) != len(self._last_cores):  # a core went on/offline: start a new window
                ratios = [None] * len(cores)
            self._ratios = (busy_ratio(self._last_total, total), ratios)
            self._last_at, self._last_total, self._last_cores = time.monotonic(), total, cores
            return self._ratios

    def _cores(self, ratios: list[float | None]) -> tuple[CpuCore, ...]:
        """Per-core values keyed by CPU id; ``present`` but not ``online`` cores are listed as offline."""
        online = parse_cpu_list(read_text(self.cpu_root / "online"))
        present = parse_cpu_list(read_text(self.cpu_root / "present"))
        if online is None or len(online) != len(ratios):
            online = list(range(len(ratios)))
        by_id = dict(zip(online, ratios, strict=True))
        cores = []
        for cpu in sorted(set(present or []) | set(online)):
            freq_khz = read_int(self.cpu_root / f"cpu{cpu}/cpufreq/scaling_cur_freq") if cpu in by_id else None
            cores.append(CpuCore(index=cpu, online=cpu in by_id, utilization_ratio=by_id.get(cpu),
                                 frequency_hertz=freq_khz * 1000.0 if freq_khz is not None else None))
        return tuple(cores)

    def _disks(self) -> tuple[DiskUsage, ...]:
        disks = []
        for path in self.disk_paths:
            try:
                usage = psutil.disk_usage(str(path))
            except OSError:
                continue  # a mount that vanished at run time: the others still count
            disks.append(DiskUsage(mountpoint=str(path), total_bytes=int(usage.total), used_bytes=int(usage.used),
                                   free_bytes=int(usage.free)))
        return tuple(disks)

"""The metrics collector: detects the sources this host has and merges their readings into one snapshot.

Sources, in order of precedence where they overlap: psutil (always), sysfs (Jetson GPU load, thermal
zones, INA3221 rails), NVML (discrete GPUs, not on Jetson), jtop (optional), tegrastats (EMC, and whatever
sysfs could not read). One failing source never breaks a snapshot: it is reported in ``sources``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from jetfleet.agent import jetson
from jetfleet.errors import ConfigError

from .jtop_source import JTOP_SOCKET, JtopSource
from .model import MetricsSnapshot, RailPower, Reading, SourceStatus
from .nvml import NvmlAdapter, NvmlSource
from .psutil_source import PsutilSource
from .source import Source
from .sysfs import SysfsSource
from .tegrastats_source import TegrastatsSource

log = logging.getLogger(__name__)
_MAPPING_FIELDS = ("temperatures_celsius", "power_rails")
_SEQUENCE_FIELDS = ("cpu_cores", "disks", "gpus")


class MetricsCollector:
    def __init__(self, sources: Sequence[Source], *, nvml: NvmlAdapter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.sources = tuple(sources)
        self.nvml = nvml
        self._clock = clock
        self._lock = threading.Lock()
        self._status = {source.name: SourceStatus(up=False, error="not read yet") for source in self.sources}

    @classmethod
    def detect(cls, *, host_root: Path = Path("/"), tegrastats_path: str | None = None,
               disk_paths: Sequence[Path] = (Path("/"),), tegrastats_interval_ms: int = 5000,
               jtop_socket: Path = JTOP_SOCKET, jtop_module: Any = None,
               nvml_module: Any = None) -> MetricsCollector:
        """The sources this host has; ``jtop_module``/``nvml_module`` replace the real libraries in tests."""
        sources: list[Source] = [PsutilSource.detect(host_root, disk_paths)]
        sysfs = SysfsSource.detect(host_root)
        if sysfs is not None:
            sources.append(sysfs)
        nvml = None if jetson.is_jetson(host_root) else NvmlAdapter.open(nvml_module)
        if nvml is not None:
            sources.append(NvmlSource(nvml))
        jtop = JtopSource.detect(socket=jtop_socket, module=jtop_module)
        if jtop is not None:
            sources.append(jtop)
        path = _tegrastats_path(tegrastats_path)
        if path is not None:
            sources.append(TegrastatsSource(path, tegrastats_interval_ms))
        log.info("metrics sources: %s", ", ".join(source.name for source in sources))
        return cls(sources, nvml=nvml)

    def source(self, name: str) -> Source | None:
        return next((source for source in self.sources if source.name == name), None)

    def start(self) -> None:
        for source in self.sources:
            try:
                source.start()
            except Exception as exc:
                self._record(source.name, exc)

    def snapshot(self) -> MetricsSnapshot:
        readings = []
        for source in self.sources:
            try:
                reading = source.read()
            except Exception as exc:  # isolate every source: report it, keep the others
                self._record(source.name, exc)
            else:
                self._record(source.name, None)
                readings.append(reading)
        with self._lock:
            statuses = dict(self._status)
        return MetricsSnapshot(**merge_readings(readings), timestamp=self._clock(), sources=statuses)

    def close(self) -> None:
        for source in self.sources:
            try:
                source.close()
            except Exception:
                log.exception("closing the %s metrics source failed", source.name)

    def __enter__(self) -> MetricsCollector:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _record(self, name: str, error: Exception | None) -> None:
        with self._lock:
            previous = self._status[name]
            if error is None:
                self._status[name] = dataclasses.replace(previous, up=True, error=None,
                                                         last_success_timestamp_seconds=self._clock())
                if previous.error is not None and previous.errors_total:
                    log.info("metrics source %s is back", name)
                return
            message = str(error) or type(error).__name__
            self._status[name] = dataclasses.replace(previous, up=False, error=message,
                                                     errors_total=previous.errors_total + 1)
        if previous.up or previous.errors_total == 0:  # log state changes, not every failed read
            log.warning("metrics source %s is down: %s", name, message)


def merge_readings(readings: Sequence[Reading]) -> dict[str, Any]:
    """Field by field, the first source that knows wins; sensors and rails are merged by name."""
    merged: dict[str, Any] = {}
    for field in dataclasses.fields(Reading):
        values = [getattr(reading, field.name) for reading in readings]
        if field.name in _MAPPING_FIELDS:
            merged[field.name] = _merge_mappings(values)
        elif field.name in _SEQUENCE_FIELDS:
            merged[field.name] = next((value for value in values if value), ())
        else:
            merged[field.name] = next((value for value in values if value is not None), None)
    return merged


def _merge_mappings(mappings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for mapping in mappings:
        for key, value in mapping.items():
            if key not in merged:
                merged[key] = value
            elif isinstance(value, RailPower):  # e.g. sysfs knows volts/amperes, tegrastats the average
                merged[key] = _fill_missing(merged[key], value)
    return merged


def _fill_missing(first: RailPower, other: RailPower) -> RailPower:
    gaps = {field.name: getattr(other, field.name) for field in dataclasses.fields(RailPower)
            if getattr(first, field.name) is None}
    return dataclasses.replace(first, **gaps)


def _tegrastats_path(explicit: str | None) -> str | None:
    if explicit is None:
        return shutil.which("tegrastats")
    if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
        raise ConfigError(f"{explicit} is not an executable file", key="tegrastats_path")
    return explicit

"""Host metrics: a snapshot model, the sources (psutil, sysfs, tegrastats, jtop, NVML) and their collector."""

from .collector import MetricsCollector
from .model import CpuCore, DiskUsage, GpuSample, MetricsSnapshot, RailPower, SourceStatus

__all__ = ["CpuCore", "DiskUsage", "GpuSample", "MetricsCollector", "MetricsSnapshot", "RailPower", "SourceStatus"]

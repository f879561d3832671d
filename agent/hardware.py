"""The agent's hardware facts, sent once at registration: CPU, memory, disk, kernel, Jetson identity, GPUs."""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Literal

import psutil

from jetfleet.agent import jetson
from jetfleet.agent.metrics.nvml import NvmlAdapter
from jetfleet.protocol import GpuInfo, HardwareInfo

Platform = Literal["jetson", "x86_64", "aarch64", "other"]


def probe_hardware(host_root: Path = Path("/"), *, nvml: NvmlAdapter | None = None) -> HardwareInfo:
    """Hardware facts of the host under ``host_root``.

    ``nvml``: an open adapter to list discrete GPUs with (e.g. ``MetricsCollector.nvml``); when ``None`` on a
    non-Jetson host, NVML is opened for this call and closed again (no GPUs when there is no driver).
    """
    arch = platform.machine() or "unknown"
    on_jetson = jetson.is_jetson(host_root)
    l4t = jetson.l4t_release(host_root) if on_jetson else None
    soc = jetson.soc_name(host_root) if on_jetson else None
    return HardwareInfo(
        platform=_platform(on_jetson, arch),
        arch=arch,
        cpu_model=cpu_model(host_root),
        cpu_cores=psutil.cpu_count(logical=True),
        memory_total_bytes=int(psutil.virtual_memory().total),
        disk_total_bytes=_disk_total(host_root),
        kernel=platform.release() or None,
        model=jetson.model_name(host_root) if on_jetson else None,
        module=jetson.module_name(host_root) if on_jetson else None,
        soc=soc,
        l4t=l4t,
        jetpack=jetson.jetpack_for_l4t(l4t),
        cuda=jetson.cuda_version(host_root),
        tensorrt=jetson.tensorrt_version(host_root),
        gpus=_jetson_gpus(soc) if on_jetson else _nvml_gpus(nvml),
    )


def _platform(on_jetson: bool, arch: str) -> Platform:
    if on_jetson:
        return "jetson"
    if arch in ("x86_64", "AMD64"):
        return "x86_64"
    if arch in ("aarch64", "arm64"):
        return "aarch64"
    return "other"


def cpu_model(host_root: Path) -> str | None:
    """On ARM the core from the implementer/part pair; else ``model name`` (x86), else the device tree's cpu."""
    cpuinfo = jetson.read_text(host_root / "proc/cpuinfo") or ""
    fields: dict[str, str] = dict(re.findall(r"^([^\t:\n]+?)\s*:\s*(.*)$", cpuinfo, flags=re.MULTILINE))
    parts: dict[str, str] = jetson.jetson_data()["arm_cpu_parts"]
    implementer, part = fields.get("CPU implementer", "").lower(), fields.get("CPU part", "").lower()
    if f"{implementer}:{part}" in parts:  # ARM kernels print an uninformative "ARMv8 Processor" model name
        return parts[f"{implementer}:{part}"]
    if fields.get("model name"):
        return fields["model name"]
    compatible = jetson.device_tree_value(host_root, "cpus/cpu@0/compatible")
    if compatible:
        vendor, _, name = compatible.splitlines()[0].partition(",")
        return f"{vendor.upper()} {name.upper().replace('CORTEX', 'Cortex')}" if name else vendor
    return fields.get("Hardware") or fields.get("Processor") or None


def _disk_total(host_root: Path) -> int | None:
    try:
        return int(psutil.disk_usage(str(host_root)).total)
    except OSError:
        return None


def _jetson_gpus(soc: str | None) -> list[GpuInfo]:
    table: dict[str, dict[str, str]] = jetson.jetson_data()["soc_gpu"]
    known = table.get(soc or "")
    if known is None:
        return [GpuInfo(name=f"{soc or 'Jetson'} iGPU", type="integrated")]
    return [GpuInfo(name=known["name"], type="integrated", compute_capability=known["compute_capability"])]


def _nvml_gpus(nvml: NvmlAdapter | None) -> list[GpuInfo]:
    if nvml is not None:
        return nvml.gpu_infos()
    opened = NvmlAdapter.open()
    if opened is None:
        return []
    try:
        return opened.gpu_infos()
    finally:
        opened.close()

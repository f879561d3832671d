"""A thin adapter over NVML (``pynvml`` from nvidia-ml-py) for discrete NVIDIA GPUs on x86.

Only unit conversions live here: MiB/bytes stay bytes, MHz -> Hz, mW -> W, mJ -> J, percent -> ratio.
A reading NVML does not support on a card (``NVMLError``) is ``None``, never a failure of the whole GPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from jetfleet.protocol import GpuInfo

from .model import GpuSample, Reading

T = TypeVar("T")
NVIDIA_CONTROL_DEVICE = "/dev/nvidiactl"


class NvmlAdapter:
    """An initialised NVML library; ``open()`` returns ``None`` when there is no driver or no GPU."""

    def __init__(self, module: Any) -> None:
        self._nvml = module
        self._lock = threading.Lock()

    @classmethod
    def open(cls, module: Any = None) -> NvmlAdapter | None:
        if module is None:
            if not Path(NVIDIA_CONTROL_DEVICE).exists():  # no driver: skip loading the library (about 3 MB)
                return None
            try:
                import pynvml
            except ImportError:
                return None
            module = pynvml
        try:
            module.nvmlInit()
        except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no NVML GPU here
            return None
        return cls(module)

    def close(self) -> None:
        with suppress(Exception):  # shutting down an already broken library is not worth an error
            self._nvml.nvmlShutdown()

    def _optional(self, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except self._nvml.NVMLError:
            return None

    def _handles(self) -> list[Any]:
        nvml = self._nvml
        return [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(nvml.nvmlDeviceGetCount())]

    def _name(self, handle: Any) -> str:
        name = self._nvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)

    def gpu_infos(self) -> list[GpuInfo]:
        with self._lock:
            infos = []
            for handle in self._handles():
                capability = self._optional(partial(self._nvml.nvmlDeviceGetCudaComputeCapability, handle))
                memory = self._optional(partial(self._nvml.nvmlDeviceGetMemoryInfo, handle))
                infos.append(GpuInfo(
                    name=self._name(handle), type="discrete",
                    memory_total_bytes=int(memory.total) if memory is not None else None,
                    compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
                ))
            return infos

    def samples(self) -> list[GpuSample]:
        with self._lock:
            return [self._sample(index, handle) for index, handle in enumerate(self._handles())]

    def _sample(self, index: int, handle: Any) -> GpuSample:
        nvml = self._nvml
        utilization = self._optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        memory = self._optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        clock_mhz = self._optional(lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        temperature = self._optional(lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        power_mw = self._optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        energy_mj = self._optional(lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return GpuSample(
            index=str(index), name=self._name(handle), type="discrete",
            utilization_ratio=utilization.gpu / 100 if utilization is not None else None,
            frequency_hertz=clock_mhz * 1e6 if clock_mhz is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            temperature_celsius=float(temperature) if temperature is not None else None,
            power_watts=power_mw / 1000 if power_mw is not None else None,
            energy_joules_total=energy_mj / 1000 if energy_mj is not None else None,
        )


class NvmlSource:
    name = "nvml"

    def __init__(self, adapter: NvmlAdapter) -> None:
        self.adapter = adapter

    def start(self) -> None:
        pass

    def read(self) -> Reading:
        return Reading(gpus=tuple(self.adapter.samples()))

    def close(self) -> None:
        self.adapter.close()

"""Stand-ins for libraries that cannot exist on an x86 machine without a GPU: pynvml and jtop.

Each mimics only the calls the adapters make, with the real units (NVML: MHz, mW, mJ, bytes, percent;
jtop: percent, kHz, mW, mV, mA). A value missing from a GPU's dict raises NVMLError like an unsupported call.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


class FakeNvml:
    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[dict[str, Any]], *, fail_init: bool = False) -> None:
        self.gpus = gpus
        self.fail_init = fail_init
        self.initialised = False
        self.shut_down = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def _value(self, handle: int, key: str) -> Any:
        if key not in self.gpus[handle]:
            raise self.NVMLError("Not Supported")
        return self.gpus[handle][key]

    def nvmlDeviceGetName(self, handle: int) -> Any:
        return self._value(handle, "name")

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self._value(handle, "util_percent"), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        used, total = self._value(handle, "memory_bytes")
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetClockInfo(self, handle: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_SM
        return int(self._value(handle, "sm_clock_mhz"))

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == self.NVML_TEMPERATURE_GPU
        return int(self._value(handle, "temperature"))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self._value(handle, "power_mw"))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        return int(self._value(handle, "energy_mj"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: int) -> tuple[int, int]:
        major, minor = self._value(handle, "capability")
        return major, minor


L4_GPU = {"name": "NVIDIA L4", "util_percent": 45, "memory_bytes": (3 * 2**30, 24 * 2**30), "sm_clock_mhz": 1410,
          "temperature": 61, "power_mw": 71234, "energy_mj": 123456789, "capability": (8, 9)}
OLD_GPU = {"name": b"Tesla K80", "util_percent": 0, "memory_bytes": (0, 12 * 2**30), "sm_clock_mhz": 324}


class FakeJtopModule:
    """The ``jtop`` module: ``jtop.jtop(interval=...)`` returns a client whose properties hold one sample."""

    class JtopException(Exception):
        pass

    def __init__(self, sample: dict[str, Any], *, start_error: str | None = None) -> None:
        self.sample = sample
        self.start_error = start_error
        self.clients: list[FakeJtopClient] = []

    def jtop(self, interval: float = 1.0) -> FakeJtopClient:
        client = FakeJtopClient(self, interval)
        self.clients.append(client)
        return client


class FakeJtopClient:
    def __init__(self, module: FakeJtopModule, interval: float) -> None:
        self.module = module
        self.interval = interval
        self.started = False
        self.closed = False

    def start(self) -> None:
        if self.module.start_error:
            raise self.module.JtopException(self.module.start_error)
        self.started = True

    def close(self) -> None:
        self.closed = True

    def __getattr__(self, name: str) -> Any:
        if name in ("gpu", "temperature", "power", "memory"):
            return self.module.sample[name]
        raise AttributeError(name)


ORIN_JTOP_SAMPLE = {
    "gpu": {"gpu": {"type": "integrated", "status": {"load": 37.5, "railgate": False},
                    "freq": {"governor": "nvhost_podgov", "cur": 918000, "min": 306000, "max": 1300500}}},
    "temperature": {"cpu": {"online": True, "temp": 51.5}, "cv0": {"online": False, "temp": -256},
                    "gpu": {"online": True, "temp": 49.25}, "tj": {"online": True, "temp": 51.8},
                    "PMIC": {"online": True, "temp": 50.0}},
    "power": {"rail": {"VDD_GPU_SOC": {"online": True, "type": "INA3221", "volt": 5104, "curr": 472, "power": 2409,
                                       "avg": 2390},
                       "VDD_CPU_CV": {"online": True, "type": "INA3221", "volt": 5104, "curr": 315, "power": 1607,
                                      "avg": 1600},
                       "NC": {"online": True, "volt": 0, "curr": 0, "power": 0, "avg": 0}},
              "tot": {"power": 4016, "avg": 3990, "name": "ALL"}},
    "memory": {"RAM": {"tot": 31000000, "used": 4000000}, "EMC": {"online": True, "val": 7, "cur": 2133000}},
}

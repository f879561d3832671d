"""The thin NVML and jtop adapters with stand-in modules (no GPU, no jtop daemon here): unit conversions."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetfleet.agent.metrics.jtop_source import JtopSource
from jetfleet.agent.metrics.model import GpuSample, RailPower
from jetfleet.agent.metrics.nvml import NvmlAdapter, NvmlSource
from jetfleet.agent.metrics.source import SourceUnavailable

from .fakes import L4_GPU, OLD_GPU, ORIN_JTOP_SAMPLE, FakeJtopModule, FakeNvml


def test_nvml_samples_convert_units() -> None:
    fake = FakeNvml([L4_GPU, OLD_GPU])
    adapter = NvmlAdapter.open(fake)
    assert adapter is not None and fake.initialised
    l4, k80 = NvmlSource(adapter).read().gpus
    assert l4 == GpuSample(index="0", name="NVIDIA L4", type="discrete", utilization_ratio=0.45,
                           frequency_hertz=1410e6, memory_used_bytes=3 * 2**30, memory_total_bytes=24 * 2**30,
                           temperature_celsius=61.0, power_watts=71.234, energy_joules_total=123456.789)
    # A card that does not support a reading has None there, and the rest still comes through.
    assert (k80.name, k80.utilization_ratio, k80.frequency_hertz) == ("Tesla K80", 0.0, 324e6)
    assert (k80.temperature_celsius, k80.power_watts, k80.energy_joules_total) == (None, None, None)
    adapter.close()
    assert fake.shut_down


def test_nvml_that_cannot_initialise_is_no_adapter() -> None:
    assert NvmlAdapter.open(FakeNvml([L4_GPU], fail_init=True)) is None


def test_real_pynvml_without_a_driver_is_no_adapter() -> None:
    pytest.importorskip("pynvml")
    if Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has an NVIDIA driver")
    assert NvmlAdapter.open() is None


def test_jtop_is_not_used_without_its_socket(tmp_path: Path) -> None:
    assert JtopSource.detect(socket=tmp_path / "jtop.sock", module=FakeJtopModule(ORIN_JTOP_SAMPLE)) is None


def test_jtop_reading_converts_units(tmp_path: Path) -> None:
    socket = tmp_path / "jtop.sock"
    socket.touch()
    module = FakeJtopModule(ORIN_JTOP_SAMPLE)
    source = JtopSource.detect(socket=socket, module=module, interval=2.0)
    assert source is not None
    reading = source.read()
    assert reading.gpus == (GpuSample(index="0", name="gpu", type="integrated", utilization_ratio=0.375,
                                      frequency_hertz=918e6),)
    assert reading.temperatures_celsius == {"cpu": 51.5, "gpu": 49.25, "tj": 51.8}  # offline cv0 and PMIC dropped
    assert reading.power_rails == {
        "vdd_gpu_soc": RailPower(current_watts=2.409, average_watts=2.39, voltage_volts=5.104, current_amperes=0.472),
        "vdd_cpu_cv": RailPower(current_watts=1.607, average_watts=1.6, voltage_volts=5.104, current_amperes=0.315),
    }
    assert (reading.emc_utilization_ratio, reading.emc_frequency_hertz) == (0.07, 2133e6)
    [client] = module.clients
    assert client.started and client.interval == 2.0
    source.read()
    assert len(module.clients) == 1  # connected once
    source.close()
    assert client.closed


def test_jtop_daemon_down_is_reported_and_retried(tmp_path: Path) -> None:
    socket = tmp_path / "jtop.sock"
    socket.touch()
    module = FakeJtopModule(ORIN_JTOP_SAMPLE, start_error="The jtop.service is not active.")
    source = JtopSource.detect(socket=socket, module=module)
    assert source is not None
    with pytest.raises(SourceUnavailable, match=r"jtop: The jtop\.service is not active"):
        source.read()
    module.start_error = None
    assert source.read().temperatures_celsius["cpu"] == 51.5

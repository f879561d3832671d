"""The sysfs source on fixture trees: GPU load, thermal zones, INA3221 rails (hwmon and JP4 iio), power mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jetfleet.agent.metrics.model import RailPower
from jetfleet.agent.metrics.source import SourceUnavailable
from jetfleet.agent.metrics.sysfs import SysfsSource

from .conftest import board


def read(name: str) -> SysfsSource:
    source = SysfsSource.detect(board(name))
    assert source is not None
    return source


def rails_watts(source: SysfsSource) -> dict[str, float]:
    return {name: round(rail.current_watts, 6) for name, rail in source.read().power_rails.items()}


def test_agx_orin_jp6() -> None:
    reading = read("agx-orin-32gb-jp6").read()
    [gpu] = reading.gpus  # the VIC devfreq node is not a GPU
    assert (gpu.name, gpu.type, gpu.utilization_ratio, gpu.frequency_hertz) == ("gpu", "integrated", 0.537, 918e6)
    # cv0/cv2 read -256000 and cv1 has no readable temp: offline, left out.
    assert reading.temperatures_celsius == {"cpu": 52.562, "gpu": 50.125, "soc0": 49.093, "soc1": 49.656,
                                            "soc2": 48.437, "tj": 52.562, "tboard": 32.0, "tdiode": 33.25}
    # W = mV x mA / 1e6; NC channels and "sum of shunt voltages" are dropped; two chips.
    assert reading.power_rails == {
        "vdd_gpu_soc": RailPower(current_watts=5104 * 472 / 1e6, voltage_volts=5.104, current_amperes=0.472),
        "vdd_cpu_cv": RailPower(current_watts=5104 * 315 / 1e6, voltage_volts=5.104, current_amperes=0.315),
        "vin_sys_5v0": RailPower(current_watts=5008 * 940 / 1e6, voltage_volts=5.008, current_amperes=0.94),
        "vddq_vdd2_1v8ao": RailPower(current_watts=1800 * 167 / 1e6, voltage_volts=1.8, current_amperes=0.167),
    }
    assert (reading.power_mode_id, reading.power_mode_name) == ("0", "MAXN")


def test_orin_nano_jp5_ga10b_devfreq_node() -> None:
    source = read("orin-nano-8gb-jp5")
    reading = source.read()
    assert [(g.name, g.utilization_ratio, g.frequency_hertz) for g in reading.gpus] == [("ga10b", 0.12, 306e6)]
    assert reading.temperatures_celsius == {"cpu": 47.5, "gpu": 46.25, "soc0": 45.968, "tj": 47.5}
    assert rails_watts(source) == {"vdd_in": 4.098176, "vdd_cpu_gpu_cv": 0.639072, "vdd_soc": 1.278144}
    assert (reading.power_mode_id, reading.power_mode_name) == ("1", "7W")


def test_orin_nano_super_jp6() -> None:
    source = read("orin-nano-super-jp6")
    reading = source.read()
    assert [(g.name, g.utilization_ratio) for g in reading.gpus] == [("gpu", 0.0)]
    assert rails_watts(source) == {"vdd_in": 3.913344, "vdd_cpu_gpu_cv": 0.596608, "vdd_soc": 1.23872}
    assert reading.power_mode_name == "MAXN_SUPER"


def test_xavier_nx_jp4_iio_rails_and_zone_names() -> None:
    reading = read("xavier-nx-jp4").read()
    assert [(g.name, g.utilization_ratio, g.frequency_hertz) for g in reading.gpus] == [("gv11b", 0.998, 1109.25e6)]
    # CPU-therm -> cpu, Tdiode_tegra -> tdiode, thermal-fan-est -> thermal (tegrastats' names); PMIC-Die dropped.
    assert reading.temperatures_celsius == {"cpu": 33.5, "gpu": 31.5, "aux": 30.0, "ao": 29.0, "tdiode": 31.25,
                                            "tboard": 30.0, "thermal": 31.35}
    assert reading.power_rails["vdd_in"] == RailPower(current_watts=6.12, voltage_volts=5.096, current_amperes=1.2)
    assert set(reading.power_rails) == {"vdd_in", "vdd_cpu_gpu_cv", "vdd_soc"}
    assert reading.power_mode_id is None


def test_rails_are_found_by_driver_not_by_hwmon_index(tmp_path: Path) -> None:
    root = tmp_path / "board"
    shutil.copytree(board("agx-orin-32gb-jp6"), root, symlinks=True)
    hwmon = root / "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon"
    (hwmon / "hwmon3").rename(hwmon / "hwmon11")
    source = SysfsSource.detect(root)
    assert source is not None
    assert set(source.read().power_rails) == {"vdd_gpu_soc", "vdd_cpu_cv", "vin_sys_5v0", "vddq_vdd2_1v8ao"}


def test_fixed_load_path_when_no_devfreq_node_names_the_gpu(tmp_path: Path) -> None:
    (tmp_path / "sys/devices/platform/gpu.0").mkdir(parents=True)
    (tmp_path / "sys/devices/platform/gpu.0/load").write_text("250\n")
    source = SysfsSource.detect(tmp_path)
    assert source is not None
    assert [(g.utilization_ratio, g.frequency_hertz) for g in source.read().gpus] == [(0.25, None)]


def test_a_late_gpu_devfreq_node_is_found_on_a_later_probe(tmp_path: Path) -> None:
    zone = tmp_path / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("40000\n")
    now = [100.0]
    source = SysfsSource(tmp_path, reprobe_seconds=30, clock=lambda: now[0])
    assert source.read().gpus == ()
    node = tmp_path / "sys/class/devfreq/17000000.gpu"
    (node / "device/of_node").mkdir(parents=True)
    (node / "device/of_node/name").write_text("gpu\0")
    (node / "device/load").write_text("100\n")
    (node / "cur_freq").write_text("306000000\n")
    now[0] += 10
    assert source.read().gpus == ()  # not looked for again yet
    now[0] += 30
    assert [g.utilization_ratio for g in source.read().gpus] == [0.1]


def test_nothing_to_read_is_no_source_and_a_vanished_tree_is_down(tmp_path: Path) -> None:
    assert SysfsSource.detect(tmp_path) is None
    root = tmp_path / "board"
    shutil.copytree(board("orin-nano-8gb-jp5"), root, symlinks=True)
    source = SysfsSource.detect(root)
    assert source is not None
    shutil.rmtree(root / "sys")
    with pytest.raises(SourceUnavailable, match="no GPU load, thermal zone or INA3221 rail is readable"):
        source.read()

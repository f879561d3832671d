"""The collector: source detection, merging, failure isolation, and the heartbeat summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetfleet.agent.metrics import MetricsCollector, MetricsSnapshot
from jetfleet.agent.metrics.collector import merge_readings
from jetfleet.agent.metrics.model import DiskUsage, GpuSample, RailPower, Reading
from jetfleet.errors import ConfigError
from tests.support.processes import wait_until

from .conftest import TEGRASTATS, board, fake_tegrastats
from .fakes import L4_GPU, ORIN_JTOP_SAMPLE, FakeJtopModule, FakeNvml

NO_NVML = FakeNvml([], fail_init=True)


def names(collector: MetricsCollector) -> list[str]:
    return [source.name for source in collector.sources]


def test_plain_machine_has_only_psutil(tmp_path: Path) -> None:
    with MetricsCollector.detect(host_root=tmp_path, disk_paths=[tmp_path], nvml_module=NO_NVML,
                                 jtop_socket=tmp_path / "jtop.sock") as collector:
        assert names(collector) == ["psutil"]
        snapshot = collector.snapshot()
    assert snapshot.gpus == () and snapshot.temperatures_celsius == {} and snapshot.power_rails == {}
    assert snapshot.sources["psutil"].up and snapshot.memory_total_bytes
    assert collector.nvml is None


def test_x86_with_an_nvidia_gpu(tmp_path: Path) -> None:
    with MetricsCollector.detect(host_root=tmp_path, disk_paths=[tmp_path], nvml_module=FakeNvml([L4_GPU]),
                                 jtop_socket=tmp_path / "jtop.sock") as collector:
        assert names(collector) == ["psutil", "nvml"]
        snapshot = collector.snapshot()
    assert [(g.name, g.utilization_ratio, g.memory_total_bytes) for g in snapshot.gpus] == [
        ("NVIDIA L4", 0.45, 24 * 2**30)]
    assert snapshot.to_heartbeat().gpu_utilization_ratio == 0.45


def test_jetson_tree_with_every_source(tmp_path: Path) -> None:
    socket = tmp_path / "jtop.sock"
    socket.touch()
    tegrastats = fake_tegrastats(tmp_path, TEGRASTATS / "agx-orin-jp6.txt")
    collector = MetricsCollector.detect(host_root=board("agx-orin-32gb-jp6"), tegrastats_path=tegrastats,
                                        tegrastats_interval_ms=50, nvml_module=FakeNvml([L4_GPU]),
                                        jtop_socket=socket, jtop_module=FakeJtopModule(ORIN_JTOP_SAMPLE))
    with collector:
        assert names(collector) == ["psutil", "sysfs", "jtop", "tegrastats"]  # no NVML on a Jetson
        wait_until(lambda: collector.snapshot().sources["tegrastats"].up, 10, what="tegrastats up")
        snapshot = collector.snapshot()
    assert all(status.up for status in snapshot.sources.values())
    assert snapshot.gpus[0].utilization_ratio == 0.537  # sysfs first, then jtop (0.375), then tegrastats (0.0)
    assert snapshot.temperatures_celsius["tboard"] == 32.0 and "cv0" not in snapshot.temperatures_celsius
    assert snapshot.power_rails["vdd_gpu_soc"].average_watts == 2.39  # jtop fills what sysfs does not know
    assert snapshot.emc_utilization_ratio == 0.07  # jtop before tegrastats (0.03)
    assert snapshot.power_mode_name == "MAXN"


def test_a_failing_source_is_reported_and_the_others_still_count(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    tegrastats = fake_tegrastats(tmp_path, empty, "--message", "NvRmMemInitNvmap failed", "--exit-code", "1")
    with MetricsCollector.detect(host_root=board("orin-nano-8gb-jp5"), tegrastats_path=tegrastats,
                                 jtop_socket=tmp_path / "jtop.sock") as collector:
        wait_until(lambda: "exited" in (collector.snapshot().sources["tegrastats"].error or ""), 10,
                   what="the tegrastats failure")
        snapshot = collector.snapshot()
    status = snapshot.sources["tegrastats"]
    assert not status.up and status.errors_total >= 2 and status.last_success_timestamp_seconds is None
    assert status.error == "tegrastats exited with status 1: NvRmMemInitNvmap failed"
    assert snapshot.sources["sysfs"].up and snapshot.sources["psutil"].up
    assert snapshot.gpus[0].utilization_ratio == 0.12 and snapshot.power_rails["vdd_in"].current_watts > 4


class Exploding:
    name = "exploding"

    def start(self) -> None:
        raise RuntimeError("cannot start")

    def read(self) -> Reading:
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        raise RuntimeError("cannot close")


def test_exceptions_of_any_kind_are_isolated(tmp_path: Path) -> None:
    collector = MetricsCollector.detect(host_root=tmp_path, disk_paths=[tmp_path], nvml_module=NO_NVML,
                                        jtop_socket=tmp_path / "jtop.sock")
    collector = MetricsCollector([*collector.sources, Exploding()])
    collector.start()
    snapshot = collector.snapshot()
    collector.close()
    assert snapshot.sources["exploding"].error == "[Errno 5] Input/output error"
    assert snapshot.sources["exploding"].errors_total == 2  # start and read
    assert snapshot.sources["psutil"].up and snapshot.memory_total_bytes


def test_explicit_tegrastats_path_must_be_executable(tmp_path: Path) -> None:
    script = tmp_path / "tegrastats"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(ConfigError, match="tegrastats_path"):
        MetricsCollector.detect(host_root=tmp_path, tegrastats_path=str(script), disk_paths=[tmp_path])


def test_merge_first_source_wins_and_names_merge() -> None:
    sysfs = Reading(temperatures_celsius={"cpu": 50.0}, power_rails={"vdd_in": RailPower(4.0, voltage_volts=5.0)},
                    gpus=(GpuSample(index="0", name="gpu", type="integrated", utilization_ratio=0.5),))
    tegrastats = Reading(temperatures_celsius={"cpu": 49.0, "tj": 51.0}, memory_used_bytes=7,
                         power_rails={"vdd_in": RailPower(3.9, average_watts=3.8), "vdd_soc": RailPower(1.0)},
                         gpus=(GpuSample(index="0", name="gr3d", type="integrated", utilization_ratio=0.1),),
                         emc_utilization_ratio=0.2)
    merged = merge_readings([Reading(memory_used_bytes=5), sysfs, tegrastats])
    assert merged["memory_used_bytes"] == 5
    assert merged["temperatures_celsius"] == {"cpu": 50.0, "tj": 51.0}
    assert merged["power_rails"] == {"vdd_in": RailPower(4.0, average_watts=3.8, voltage_volts=5.0),
                                     "vdd_soc": RailPower(1.0)}
    assert [gpu.name for gpu in merged["gpus"]] == ["gpu"]
    assert merged["emc_utilization_ratio"] == 0.2


def test_heartbeat_summary_from_a_jetson_snapshot() -> None:
    with MetricsCollector.detect(host_root=board("orin-nano-super-jp6"), jtop_socket=Path("/nonexistent")) as c:
        snapshot = c.snapshot()
    metrics = snapshot.to_heartbeat()
    assert metrics.gpu_utilization_ratio == 0.0
    assert metrics.temperatures_celsius == {"cpu": 62.84, "gpu": 61.69, "soc0": 60.62, "soc1": 61.69, "soc2": 61.97,
                                            "tj": 62.84}
    assert metrics.power_watts == {"vdd_cpu_gpu_cv": 0.597, "vdd_in": 3.913, "vdd_soc": 1.239}
    assert snapshot.board_power_method == "rail" and snapshot.board_power_watts == pytest.approx(3.913344)
    assert metrics.memory_total_bytes == snapshot.memory_total_bytes
    assert metrics.disk_total_bytes == snapshot.disks[0].total_bytes


def test_heartbeat_summary_stays_small_on_a_machine_with_many_sensors() -> None:
    snapshot = MetricsSnapshot(
        cpu_utilization_ratio=0.123456789, memory_total_bytes=64 * 2**30, memory_used_bytes=17 * 2**30,
        swap_total_bytes=32 * 2**30, swap_used_bytes=2**30, uptime_seconds=123456.789,
        disks=(DiskUsage("/", 2**40, 2**39, 2**39),),
        gpus=tuple(GpuSample(index=str(i), name="g", type="discrete", utilization_ratio=i / 10) for i in range(4)),
        temperatures_celsius={f"sensor_with_a_very_long_name_{i:02}": 100.123456 + i for i in range(40)},
        power_rails={f"vdd_rail_with_a_very_long_name_{i:02}": RailPower(100.23456789 * i) for i in range(30)},
    )
    metrics = snapshot.to_heartbeat()
    assert len(metrics.model_dump_json()) <= 1024
    assert list(metrics.temperatures_celsius) == [f"sensor_with_a_very_long_name_{i:02}" for i in range(12)]
    assert 0 < len(metrics.power_watts) <= 8
    assert metrics.gpu_utilization_ratio == 0.3 and metrics.cpu_utilization_ratio == 0.1235
    assert json.loads(metrics.model_dump_json())["uptime_seconds"] == 123456.8


def test_heartbeat_ratios_are_clamped_for_the_wire_model() -> None:
    snapshot = MetricsSnapshot(gpus=(GpuSample(index="0", name="gr3d", type="integrated", utilization_ratio=1.5),))
    assert snapshot.to_heartbeat().gpu_utilization_ratio == 1.0

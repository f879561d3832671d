"""The Prometheus exporter served over real HTTP on 127.0.0.1 and parsed with prometheus_client's parser."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jetfleet.agent.exporter import MetricsServer, build_registry, serve_metrics
from jetfleet.agent.hardware import probe_hardware
from jetfleet.agent.metrics import MetricsCollector
from jetfleet.agent.state import HeartbeatCounters
from jetfleet.errors import ConfigError
from tests.support.processes import wait_until

from .conftest import board, fake_tegrastats
from .fakes import L4_GPU, FakeNvml

Samples = dict[str, list[tuple[dict[str, str], float]]]
UNIT_SUFFIXES = ("_bytes", "_seconds", "_celsius", "_watts", "_hertz", "_ratio", "_volts", "_amperes", "_joules",
                 "_total", "_info", "_count", "_online", "_up")


def scrape(server: MetricsServer) -> tuple[Samples, dict[str, str]]:
    response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    assert response.status_code == 200
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples, types


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    matches = [v for sample_labels, v in samples[metric] if all(sample_labels.get(k) == x for k, x in labels.items())]
    assert len(matches) == 1, (metric, labels, samples.get(metric))
    return matches[0]


@pytest.fixture
def orin_server(tmp_path: Path) -> Iterator[tuple[MetricsServer, HeartbeatCounters]]:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    failing = fake_tegrastats(tmp_path, empty, "--message", "tegrastats: not permitted", "--exit-code", "1")
    root = board("agx-orin-32gb-jp6")
    collector = MetricsCollector.detect(host_root=root, tegrastats_path=failing, disk_paths=[Path("/")],
                                        jtop_socket=tmp_path / "jtop.sock")
    counters = HeartbeatCounters()
    registry = build_registry(collector, hardware=probe_hardware(root), device_id="jetson-a", counters=counters)
    with collector, serve_metrics(registry, "127.0.0.1", 0) as server:
        wait_until(lambda: "exited" in (collector.snapshot().sources["tegrastats"].error or ""), 10,
                   what="the failing tegrastats")
        yield server, counters


def test_jetson_metrics_names_labels_and_values(orin_server: tuple[MetricsServer, HeartbeatCounters]) -> None:
    server, counters = orin_server
    counters.record_success(now=1_700_000_000.5)
    counters.record_success(now=1_700_000_030.5)
    counters.record_failure()
    samples, types = scrape(server)

    info = samples["jetfleet_device_info"]
    assert len(info) == 1
    labels, one = info[0]
    assert one == 1
    assert {k: labels[k] for k in ("device_id", "module", "jetpack", "l4t", "platform", "soc")} == {
        "device_id": "jetson-a", "module": "AGX Orin 32GB", "jetpack": "6.2.1", "l4t": "36.4.4",
        "platform": "jetson", "soc": "tegra234"}
    assert value(samples, "jetfleet_power_mode_info", mode="MAXN", id="0") == 1

    assert value(samples, "jetfleet_collector_up", source="tegrastats") == 0  # the failing source...
    assert value(samples, "jetfleet_collector_up", source="sysfs") == 1  # ...does not stop the others
    assert value(samples, "jetfleet_collector_up", source="psutil") == 1
    assert value(samples, "jetfleet_collector_errors_total", source="tegrastats") >= 1
    assert value(samples, "jetfleet_collector_errors_total", source="sysfs") == 0

    assert value(samples, "jetfleet_gpu_utilization_ratio", gpu="0") == 0.537
    assert value(samples, "jetfleet_gpu_frequency_hertz", gpu="0") == 918e6
    assert value(samples, "jetfleet_gpu_count") == 1
    assert "jetfleet_gpu_memory_used_bytes" not in samples  # unified memory: not faked
    assert value(samples, "jetfleet_temperature_celsius", sensor="cpu") == 52.562
    assert {labels["sensor"] for labels, _ in samples["jetfleet_temperature_celsius"]} == {
        "cpu", "gpu", "soc0", "soc1", "soc2", "tj", "tboard", "tdiode"}
    assert value(samples, "jetfleet_power_watts", rail="vdd_gpu_soc") == pytest.approx(2.409088)
    assert value(samples, "jetfleet_rail_voltage_volts", rail="vin_sys_5v0") == 5.008
    assert value(samples, "jetfleet_rail_current_amperes", rail="vin_sys_5v0") == 0.94
    assert value(samples, "jetfleet_board_power_watts", method="sum") == pytest.approx(
        (5104 * 472 + 5104 * 315 + 5008 * 940 + 1800 * 167) / 1e6)

    memory_total = value(samples, "jetfleet_memory_total_bytes")
    assert 0 < value(samples, "jetfleet_memory_used_bytes") < memory_total
    assert value(samples, "jetfleet_disk_total_bytes", mountpoint="/") > value(
        samples, "jetfleet_disk_used_bytes", mountpoint="/") > 0
    assert 0 <= value(samples, "jetfleet_cpu_utilization_ratio") <= 1
    assert len(samples["jetfleet_cpu_core_utilization_ratio"]) >= 1

    assert value(samples, "jetfleet_heartbeats_total") == 2
    assert value(samples, "jetfleet_heartbeat_failures_total") == 1
    assert value(samples, "jetfleet_last_heartbeat_timestamp_seconds") == 1_700_000_030.5
    assert types["jetfleet_heartbeats"] == "counter" and types["jetfleet_memory_used_bytes"] == "gauge"
    assert "process_resident_memory_bytes" in samples

    for name in samples:
        if name.startswith("jetfleet_"):
            assert name.endswith(UNIT_SUFFIXES), name


def test_every_scrape_takes_a_fresh_snapshot(orin_server: tuple[MetricsServer, HeartbeatCounters]) -> None:
    server, counters = orin_server
    before, _ = scrape(server)
    counters.record_success()
    after, _ = scrape(server)
    assert value(after, "jetfleet_heartbeats_total") == value(before, "jetfleet_heartbeats_total") + 1
    assert value(after, "jetfleet_collector_errors_total", source="tegrastats") > value(
        before, "jetfleet_collector_errors_total", source="tegrastats")
    assert value(before, "jetfleet_last_heartbeat_timestamp_seconds") == 0  # never


def test_plain_x86_has_no_gpu_series(tmp_path: Path) -> None:
    collector = MetricsCollector.detect(host_root=tmp_path, disk_paths=[Path("/")],
                                        nvml_module=FakeNvml([], fail_init=True), jtop_socket=tmp_path / "jtop.sock")
    registry = build_registry(collector, hardware=probe_hardware(tmp_path, nvml=None), device_id="pc",
                              counters=HeartbeatCounters())
    with collector, serve_metrics(registry, "127.0.0.1", 0) as server:
        samples, _ = scrape(server)
    assert value(samples, "jetfleet_gpu_count") == 0
    assert not [name for name in samples if name.startswith("jetfleet_gpu_") and name != "jetfleet_gpu_count"]
    assert "jetfleet_temperature_celsius" not in samples and "jetfleet_power_watts" not in samples
    labels, _ = samples["jetfleet_device_info"][0]
    assert (labels["device_id"], labels["module"], labels["jetpack"]) == ("pc", "", "")


def test_nvml_gpu_series(tmp_path: Path) -> None:
    nvml = FakeNvml([L4_GPU])
    collector = MetricsCollector.detect(host_root=tmp_path, disk_paths=[Path("/")], nvml_module=nvml,
                                        jtop_socket=tmp_path / "jtop.sock")
    registry = build_registry(collector, hardware=probe_hardware(tmp_path, nvml=collector.nvml), device_id="pc",
                              counters=HeartbeatCounters())
    with collector, serve_metrics(registry, "127.0.0.1", 0) as server:
        samples, types = scrape(server)
    assert value(samples, "jetfleet_gpu_info", gpu="0", name="NVIDIA L4", type="discrete") == 1
    assert value(samples, "jetfleet_gpu_utilization_ratio", gpu="0") == 0.45
    assert value(samples, "jetfleet_gpu_memory_total_bytes", gpu="0") == 24 * 2**30
    assert value(samples, "jetfleet_gpu_memory_used_bytes", gpu="0") == 3 * 2**30
    assert value(samples, "jetfleet_gpu_temperature_celsius", gpu="0") == 61
    assert value(samples, "jetfleet_gpu_power_watts", gpu="0") == 71.234
    assert value(samples, "jetfleet_gpu_energy_joules_total", gpu="0") == 123456.789
    assert types["jetfleet_gpu_energy_joules"] == "counter"
    assert nvml.shut_down  # the collector closed its NVML


def test_close_frees_the_port_and_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    collector = MetricsCollector.detect(host_root=tmp_path, disk_paths=[Path("/")],
                                        nvml_module=FakeNvml([], fail_init=True), jtop_socket=tmp_path / "jtop.sock")
    registry = build_registry(collector, hardware=probe_hardware(tmp_path), device_id="pc",
                              counters=HeartbeatCounters())
    server = serve_metrics(registry, "127.0.0.1", 0)
    port = server.port
    with pytest.raises(ConfigError, match=f"key 'metrics_port'.*cannot serve metrics on 127.0.0.1:{port}"):
        serve_metrics(registry, "127.0.0.1", port)
    server.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    collector.close()

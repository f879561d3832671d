"""The psutil source on this real machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from jetfleet.agent.metrics.psutil_source import PsutilSource, parse_cpu_list
from jetfleet.errors import ConfigError


def busy(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1000))


def test_reads_this_machine() -> None:
    source = PsutilSource.detect(Path("/"), [Path("/")])
    busy(0.6)
    reading = source.read()
    assert len(reading.cpu_cores) == psutil.cpu_count()
    assert all(core.online and core.utilization_ratio is not None for core in reading.cpu_cores)
    assert all(0.0 <= core.utilization_ratio <= 1.0 for core in reading.cpu_cores if core.utilization_ratio is not None)
    assert reading.cpu_utilization_ratio is not None
    assert reading.cpu_utilization_ratio >= 0.3 / psutil.cpu_count()  # we kept one core busy
    memory = psutil.virtual_memory()
    assert reading.memory_total_bytes == memory.total
    assert reading.memory_used_bytes is not None and 0 < reading.memory_used_bytes < memory.total
    assert reading.swap_total_bytes == psutil.swap_memory().total
    [disk] = reading.disks
    stat = os.statvfs("/")
    assert (disk.mountpoint, disk.total_bytes) == ("/", stat.f_blocks * stat.f_frsize)
    assert reading.uptime_seconds is not None
    assert abs(reading.uptime_seconds - (time.time() - psutil.boot_time())) < 5


def test_back_to_back_reads_reuse_the_last_window() -> None:
    source = PsutilSource.detect(Path("/"), [Path("/")])
    busy(0.3)
    first = source.read().cpu_utilization_ratio
    assert source.read().cpu_utilization_ratio == first


def test_offline_cores_and_frequencies_from_the_host_tree(tmp_path: Path) -> None:
    count = psutil.cpu_count()
    cpu = tmp_path / "sys/devices/system/cpu"
    cpu.mkdir(parents=True)
    (cpu / "online").write_text(",".join(str(2 * i) for i in range(count)) + "\n")  # every other core is online
    (cpu / "present").write_text(f"0-{2 * count - 1}\n")
    (cpu / "cpu0/cpufreq").mkdir(parents=True)
    (cpu / "cpu0/cpufreq/scaling_cur_freq").write_text("1190400\n")  # kHz
    source = PsutilSource.detect(tmp_path, [tmp_path])
    cores = source.read().cpu_cores
    assert [core.index for core in cores] == list(range(2 * count))
    assert [core.online for core in cores] == [i % 2 == 0 for i in range(2 * count)]
    assert all(core.utilization_ratio is None for core in cores if not core.online)
    assert cores[0].frequency_hertz == 1_190_400_000.0
    assert cores[1].frequency_hertz is None


def test_a_missing_disk_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"disk path {tmp_path / 'nope'} does not exist"):
        PsutilSource.detect(Path("/"), [Path("/"), tmp_path / "nope"])


@pytest.mark.parametrize(("text", "cpus"), [("0-3", [0, 1, 2, 3]), ("0,2-3\n", [0, 2, 3]), ("5", [5]),
                                            ("", None), ("x-1", None), (None, None)])
def test_parse_cpu_list(text: str | None, cpus: list[int] | None) -> None:
    assert parse_cpu_list(text) == cpus

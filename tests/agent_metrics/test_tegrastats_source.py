"""The tegrastats source with a real child process (a fixture script printing sample lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetfleet.agent.metrics.source import SourceUnavailable
from jetfleet.agent.metrics.tegrastats_source import TegrastatsSource
from tests.support.processes import wait_until

from .conftest import TEGRASTATS, fake_tegrastats, pid_gone

MIB = 1024 * 1024


def readable(source: TegrastatsSource) -> bool:
    try:
        source.read()
    except SourceUnavailable:
        return False
    return True


def test_streams_samples_and_stops_the_child_by_pid(tmp_path: Path) -> None:
    path = fake_tegrastats(tmp_path, TEGRASTATS / "agx-orin-jp6.txt")
    source = TegrastatsSource(path, interval_ms=50)
    source.start()
    try:
        wait_until(lambda: readable(source), 10, what="a tegrastats sample")
        pid = source.pid
        assert pid is not None and not pid_gone(pid)
        reading = source.read()
        assert reading.memory_total_bytes == 62841 * MIB
        assert reading.memory_used_bytes in {18207 * MIB, 18202 * MIB, 18203 * MIB}
        assert set(reading.power_rails) == {"vdd_gpu_soc", "vdd_cpu_cv", "vin_sys_5v0"}
        assert reading.power_rails["vdd_cpu_cv"].current_watts == 1.607
        assert reading.temperatures_celsius["tj"] > 50
        assert reading.emc_frequency_hertz == 2133e6
        assert [core.online for core in reading.cpu_cores] == [True] * 12
    finally:
        source.close()
    assert pid_gone(pid)
    assert source.pid is None


def test_restarts_the_child_when_it_exits(tmp_path: Path) -> None:
    started = tmp_path / "started"
    path = fake_tegrastats(tmp_path, TEGRASTATS / "thor-jp7.txt", "--count", "2", "--started", str(started))
    source = TegrastatsSource(path, interval_ms=20, restart_delay=0.05)
    source.start()
    try:
        wait_until(lambda: started.exists() and len(set(started.read_text().split())) >= 3, 20,
                   what="three tegrastats runs")
        assert source.starts >= 3
        assert source.read().gpus[0].frequency_hertz == 900e6
    finally:
        source.close()
    assert all(pid_gone(int(pid)) for pid in started.read_text().split())


def test_a_child_that_fails_reports_its_status_and_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    path = fake_tegrastats(tmp_path, empty, "--message", "tegrastats: open /dev/nvhost failed", "--exit-code", "3")
    source = TegrastatsSource(path, interval_ms=20, restart_delay=5)
    source.start()
    try:
        wait_until(lambda: "exited" in _error(source), 10, what="the exit to be reported")
        assert _error(source) == "tegrastats exited with status 3: tegrastats: open /dev/nvhost failed"
    finally:
        source.close()


def test_a_stale_sample_is_not_served(tmp_path: Path) -> None:
    path = fake_tegrastats(tmp_path, TEGRASTATS / "nano-jp4.txt", "--count", "1")
    source = TegrastatsSource(path, interval_ms=10, restart_delay=60, stale_after=0.3)
    source.start()
    try:
        wait_until(lambda: readable(source), 10, what="the one sample")
        wait_until(lambda: not readable(source), 10, what="the sample to go stale")
        stale = r"no tegrastats sample for \d+ s \(tegrastats exited with status 0"
        with pytest.raises(SourceUnavailable, match=stale):
            source.read()
    finally:
        source.close()


def test_a_missing_executable_is_reported(tmp_path: Path) -> None:
    source = TegrastatsSource(str(tmp_path / "nope"), restart_delay=60)
    source.start()
    try:
        wait_until(lambda: source.starts == 0 and "cannot start" in _error(source), 10, what="the start error")
    finally:
        source.close()


def test_close_without_start_is_harmless() -> None:
    source = TegrastatsSource("/nonexistent/tegrastats")
    source.close()
    source.close()


def _error(source: TegrastatsSource) -> str:
    try:
        source.read()
    except SourceUnavailable as exc:
        return str(exc)
    return ""

"""``jetfleet agent parse-tegrastats`` and ``jetfleet agent metrics`` run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.processes import jetfleet_cmd, subprocess_env

from .conftest import TEGRASTATS, board, fake_tegrastats, tegrastats_lines

KEYS = ["timestamp", "ram_used_bytes", "ram_total_bytes", "swap_used_bytes", "swap_total_bytes", "cpu_util_ratio",
        "cpu_freq_hz", "gpu_util_ratio", "gpu_freq_hz", "emc_util_ratio", "temperatures_celsius", "power_watts"]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args), input=stdin, capture_output=True, text=True, env=subprocess_env(),
                          timeout=60)


def test_parse_tegrastats_survives_bytes_that_are_not_utf8() -> None:
    line = tegrastats_lines("nano-jp4")[0].encode()
    stdin = b"\xff\xfe garbage \x00\n" + line.replace(b"PLL@", b"\xc3PLL@") + b"\n"
    result = subprocess.run(jetfleet_cmd("agent", "parse-tegrastats"), input=stdin, capture_output=True,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    error, sample = [json.loads(text) for text in result.stdout.decode().splitlines()]
    assert list(error) == ["error"]
    assert sample["ram_used_bytes"] == 1923 * 1048576 and sample["temperatures_celsius"]["cpu"] == 40.0


def test_parse_tegrastats_prints_one_object_per_line_and_survives_garbage() -> None:
    lines = [*tegrastats_lines("xavier-nx-jp4"), "this is not tegrastats", "", *tegrastats_lines("orin-jp7")]
    result = run("agent", "parse-tegrastats", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == 4  # the blank line is skipped
    first, error, jp7, jp7_non_root = objects
    assert list(first) == KEYS
    assert first["timestamp"] is None
    assert first["ram_used_bytes"] == 5246 * 1048576 and first["swap_total_bytes"] == 20269 * 1048576
    assert first["cpu_util_ratio"] == [0.47, 0.23, 0.32, 0.22, 0.31, 0.96]
    assert first["gpu_freq_hz"] == 1109e6 and first["emc_util_ratio"] == 0.02
    assert first["temperatures_celsius"] == {"ao": 29.0, "gpu": 31.5, "aux": 30.0, "cpu": 33.5, "thermal": 31.35}
    assert first["power_watts"]["VDD_IN"] == {"current": 6.14, "average": 5.51}
    assert list(error) == ["error"] and "not tegrastats" in error["error"]
    assert jp7["timestamp"] == "01-15-2026 10:00:00"
    assert jp7["cpu_util_ratio"][4:] == [None, None] and jp7["gpu_freq_hz"] == 612e6
    assert jp7["power_watts"]["VDD_SOC"] == {"current": 1.238, "average": 1.237}
    assert jp7_non_root["cpu_freq_hz"] == [None] * 6 and jp7_non_root["gpu_util_ratio"] == 0.07


def test_metrics_json_merges_sysfs_and_tegrastats_on_a_fixture_tree(tmp_path: Path) -> None:
    tegrastats = fake_tegrastats(tmp_path, TEGRASTATS / "agx-orin-jp6.txt")
    result = run("agent", "metrics", "--json", "--host-root", str(board("agx-orin-32gb-jp6")),
                 "--tegrastats-path", tegrastats, "--disk", "/")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {name: status["up"] for name, status in data["sources"].items()} == {
        "psutil": True, "sysfs": True, "tegrastats": True}
    assert data["gpus"][0]["utilization_ratio"] == 0.537  # sysfs wins over tegrastats' GR3D 0%
    assert data["gpus"][0]["frequency_hertz"] == 918e6
    assert data["emc_frequency_hertz"] == 2133e6  # only tegrastats knows the EMC
    vdd_gpu_soc = data["power_rails"]["vdd_gpu_soc"]
    assert vdd_gpu_soc["voltage_volts"] == 5.104 and vdd_gpu_soc["average_watts"] == 2.412  # sysfs + tegrastats
    assert data["temperatures_celsius"]["tboard"] == 32.0  # from the thermal zones
    assert data["board_power_method"] == "sum"
    assert data["power_mode_name"] == "MAXN"
    assert data["disks"][0]["mountpoint"] == "/" and data["memory_total_bytes"] > 0


def test_metrics_table_on_this_machine() -> None:
    result = run("agent", "metrics")
    assert result.returncode == 0, result.stderr
    for text in ("System", "CPU cores", "Disks", "psutil", "up"):
        assert text in result.stdout


def test_metrics_refuses_a_tegrastats_path_that_is_not_executable(tmp_path: Path) -> None:
    result = run("agent", "metrics", "--tegrastats-path", str(tmp_path / "missing"))
    assert result.returncode == 2
    assert f"key 'tegrastats_path': {tmp_path / 'missing'} is not an executable file" in result.stderr

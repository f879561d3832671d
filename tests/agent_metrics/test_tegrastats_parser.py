"""The tegrastats parser against every sample line of shared/notes/jetson.md §1.3/§1.4, plus property tests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetfleet.agent.metrics.tegrastats_parser import TegrastatsSample, UnparsedLine, parse_tegrastats_line

from .conftest import TEGRASTATS, tegrastats_lines

MIB = 1024 * 1024
ALL_LINES = [line for path in sorted(TEGRASTATS.glob("*.txt")) for line in path.read_text().splitlines()]


def parse(name: str, index: int = 0) -> TegrastatsSample:
    result = parse_tegrastats_line(tegrastats_lines(name)[index])
    assert isinstance(result, TegrastatsSample), result
    return result


def powers(sample: TegrastatsSample) -> dict[str, tuple[float, float]]:
    return {name: (rail.current_watts, rail.average_watts) for name, rail in sample.power_watts.items()}


def test_agx_orin_jp6_first_line() -> None:
    s = parse("agx-orin-jp6", 0)
    assert s.timestamp == "05-09-2026 18:42:06"
    assert (s.ram_used_bytes, s.ram_total_bytes) == (18207 * MIB, 62841 * MIB)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (86 * MIB, 31420 * MIB)
    assert s.cpu_util_ratio == (0.14, 0.05, 0.08, 0.14, 0.46, 0.47, 0.02, 0.10, 0.04, 0.05, 0.06, 0.10)
    assert s.cpu_freq_hz == (2188e6, 2112e6, 2035e6, 2201e6, *[1267e6] * 4, *[1036e6] * 4)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.0, 0.0)
    assert (s.emc_util_ratio, s.emc_freq_hz) == (0.03, 2133e6)
    assert s.temperatures_celsius == {"cpu": 52.562, "soc2": 48.437, "soc0": 49.093, "tj": 52.562, "soc1": 49.656}
    assert powers(s) == {"VDD_GPU_SOC": (2.412, 2.412), "VDD_CPU_CV": (1.607, 1.607), "VIN_SYS_5V0": (4.707, 4.707)}


def test_agx_orin_jp6_later_lines_track_the_average() -> None:
    second, third = parse("agx-orin-jp6", 1), parse("agx-orin-jp6", 2)
    assert second.ram_used_bytes == 18202 * MIB
    assert powers(second)["VIN_SYS_5V0"] == (4.607, 4.657)
    assert powers(third)["VIN_SYS_5V0"] == (4.707, 4.674)
    assert third.emc_util_ratio == 0.02
    assert third.cpu_util_ratio[7] == 0.70 and third.cpu_freq_hz[0] == 729e6


def test_agx_orin_jp5_drops_offline_sensors_and_nc_rails() -> None:
    s = parse("agx-orin-jp5")
    assert s.timestamp == "04-11-2025 10:36:27"
    assert (s.ram_used_bytes, s.ram_total_bytes) == (4321 * MIB, 62801 * MIB)
    assert s.cpu_util_ratio == (0.0,) * 12 and s.cpu_freq_hz == (729e6,) * 12
    # CV0/CV1/CV2/GPU print -256C (offline) and are left out; names are lower-cased.
    assert s.temperatures_celsius == {"cpu": 44.562, "tboard": 32.0, "soc2": 40.093, "tdiode": 33.0, "soc0": 41.093,
                                      "tj": 44.343, "soc1": 41.25}
    assert powers(s) == {"VDD_GPU_SOC": (2.34, 2.34), "VDD_CPU_CV": (0.39, 0.39), "VIN_SYS_5V0": (4.025, 4.025),
                         "VDDQ_VDD2_1V8AO": (0.301, 0.301)}
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.0, 0.0)


def test_orin_nano_jp6_non_root_with_offline_cores_and_malformed_rail() -> None:
    s = parse("orin-nano-jp6-nonroot")
    assert (s.ram_used_bytes, s.ram_total_bytes) == (3162 * MIB, 7620 * MIB)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (0, 3810 * MIB)
    assert s.cpu_util_ratio == (0.01, 0.0, 0.0, 0.0, None, None)
    assert s.cpu_freq_hz == (729e6, 729e6, 729e6, 729e6, None, None)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.01, None)  # no root: no GPU frequency
    assert s.emc_util_ratio is None
    assert s.temperatures_celsius == {"cpu": 62.843, "soc2": 61.968, "soc0": 60.625, "gpu": 61.687, "tj": 62.843,
                                      "soc1": 61.687}
    # "598mW/598": the unitless average takes its neighbour's unit.
    assert powers(s) == {"VDD_IN": (3.913, 3.922), "VDD_CPU_GPU_CV": (0.598, 0.598), "VDD_SOC": (1.238, 1.237)}


def test_xavier_nx_jp4_has_no_timestamp_and_unitless_milliwatts() -> None:
    s = parse("xavier-nx-jp4")
    assert s.timestamp is None
    assert (s.ram_used_bytes, s.ram_total_bytes) == (5246 * MIB, 7771 * MIB)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (983 * MIB, 20269 * MIB)
    assert s.cpu_util_ratio == (0.47, 0.23, 0.32, 0.22, 0.31, 0.96) and s.cpu_freq_hz == (1420e6,) * 6
    assert (s.emc_util_ratio, s.emc_freq_hz) == (0.02, 1600e6)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.0, 1109e6)
    assert s.temperatures_celsius == {"ao": 29.0, "gpu": 31.5, "aux": 30.0, "cpu": 33.5, "thermal": 31.35}  # no PMIC
    assert powers(s) == {"VDD_IN": (6.14, 5.51), "VDD_CPU_GPU_CV": (2.706, 2.119), "VDD_SOC": (1.074, 1.051)}


def test_xavier_nx_jp5() -> None:
    s = parse("xavier-nx-jp5")
    assert s.timestamp == "07-09-2024 13:31:31"
    assert s.ram_used_bytes == 3_321_888_768  # waggle's golden value: 3168 MB are MiB
    assert s.ram_total_bytes == 6851 * MIB and s.swap_used_bytes == 161 * MIB
    assert s.cpu_util_ratio == (0.23, 0.17, 0.16, 0.13, 0.23, 0.10)
    assert s.cpu_freq_hz == (1397e6, 1192e6, 1190e6, 1190e6, 1190e6, 1190e6)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.0, 114e6)
    assert (s.emc_util_ratio, s.emc_freq_hz) == (0.02, 204e6)
    assert s.temperatures_celsius == {"aux": 45.0, "cpu": 46.5, "thermal": 45.6, "ao": 45.0, "gpu": 45.5}
    assert powers(s) == {"VDD_IN": (2.763, 2.846), "VDD_CPU_GPU_CV": (0.65, 0.67), "VDD_SOC": (0.65, 0.711)}


def test_classic_nano_jp4_with_iram() -> None:
    s = parse("nano-jp4")
    assert s.timestamp is None
    assert (s.ram_used_bytes, s.ram_total_bytes) == (1923 * MIB, 3964 * MIB)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (191 * MIB, 1982 * MIB)
    assert s.cpu_util_ratio == (0.05, 0.04, 0.03, 0.06) and s.cpu_freq_hz == (1224e6,) * 4
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.0, 76e6)
    assert s.temperatures_celsius == {"pll": 37.0, "cpu": 40.0, "gpu": 40.0, "ao": 45.0, "thermal": 40.0}
    assert powers(s) == {"POM_5V_IN": (1.75, 1.628), "POM_5V_GPU": (0.0, 0.0), "POM_5V_CPU": (0.366, 0.406)}


def test_agx_xavier_rail_names_that_collide_with_sensor_names() -> None:
    s = parse("agx-xavier-jp4")
    assert s.ram_used_bytes == 407 * MIB
    assert s.cpu_util_ratio == (0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18)
    assert (s.emc_util_ratio, s.emc_freq_hz) == (0.0, None)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.42, None)
    assert s.temperatures_celsius == {"ao": 26.5, "gpu": 28.0, "iwlwifi": 30.0, "tdiode": 31.25, "aux": 26.5,
                                      "cpu": 27.5, "thermal": 27.45, "tboard": 27.0}
    assert powers(s) == {"GPU": (1.155, 1.155), "CPU": (0.385, 0.385), "SOC": (2.504, 2.503), "CV": (0.0, 0.0),
                         "VDDRQ": (0.192, 0.192), "SYS5V": (2.692, 2.692)}


def test_jetpack7_current_max_temperatures_and_triple_power() -> None:
    s = parse("orin-jp7", 0)
    assert s.timestamp == "01-15-2026 10:00:00"
    assert s.cpu_util_ratio == (0.01, 0.0, 0.0, 0.0, None, None)
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (0.05, 612e6)  # the maximum over the GPCs
    assert s.temperatures_celsius == {"cpu": 45.8, "soc2": 44.1, "gpu": 43.9, "tj": 45.8}  # current values; cv0 offline
    assert powers(s) == {"VDD_IN": (3.4, 3.45), "VDD_CPU_GPU_CV": (0.598, 0.6), "VDD_SOC": (1.238, 1.237)}
    assert s.power_watts["VDD_IN"].max_watts == 3.5


def test_jetpack7_non_root_line() -> None:
    s = parse("orin-jp7", 1)
    assert s.cpu_util_ratio == (0.03, 0.01, 0.0, 0.02, None, None)
    assert s.cpu_freq_hz == (None,) * 6
    assert (s.gpu_util_ratio, s.gpu_freq_hz, s.emc_util_ratio) == (0.07, None, None)
    assert powers(s)["VDD_IN"] == (3.5, 3.475)


def test_thor_gpu_frequency_without_utilisation() -> None:
    s = parse("thor-jp7")
    assert (s.ram_used_bytes, s.ram_total_bytes) == (9000 * MIB, 125772 * MIB)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (0, 0)
    assert len(s.cpu_util_ratio) == 14 and s.cpu_freq_hz == (972e6,) * 14
    assert (s.gpu_util_ratio, s.gpu_freq_hz) == (None, 900e6)
    assert (s.emc_util_ratio, s.emc_freq_hz) == (None, 4266e6)
    assert s.temperatures_celsius == {"cpu": 40.5, "tj": 42.0, "soc012": 39.8, "soc345": 39.5}
    assert powers(s) == {"VDD_GPU": (1.2, 1.18), "VDD_CPU_SOC_MSS": (5.6, 5.5), "VIN_SYS_5V0": (4.1, 4.0)}


def test_old_cpu_format_with_one_frequency_for_all_cores() -> None:
    s = parse_tegrastats_line("RAM 1000/3964MB (lfb 2x2MB) CPU [5%,4%,off,6%]@1224 GR3D_FREQ 3%@76")
    assert isinstance(s, TegrastatsSample)
    assert s.cpu_util_ratio == (0.05, 0.04, None, 0.06)
    assert s.cpu_freq_hz == (1224e6, 1224e6, None, 1224e6)
    assert (s.swap_used_bytes, s.swap_total_bytes) == (None, None)


def test_json_has_exactly_the_documented_keys() -> None:
    payload = parse("agx-orin-jp6").to_json()
    assert list(payload) == ["timestamp", "ram_used_bytes", "ram_total_bytes", "swap_used_bytes", "swap_total_bytes",
                             "cpu_util_ratio", "cpu_freq_hz", "gpu_util_ratio", "gpu_freq_hz", "emc_util_ratio",
                             "temperatures_celsius", "power_watts"]
    assert payload["power_watts"]["VDD_CPU_CV"] == {"current": 1.607, "average": 1.607}


@pytest.mark.parametrize("line", ["", "hello world", "tegrastats: command not found", "RAM lots/of MB",
                                  "CPU [1%@729] cpu@40C VDD_IN 1/1"])
def test_lines_without_a_ram_field_are_errors(line: str) -> None:
    result = parse_tegrastats_line(line)
    assert isinstance(result, UnparsedLine)
    assert "RAM" in result.error


def test_every_fixture_line_parses() -> None:
    assert len(ALL_LINES) == 12
    for line in ALL_LINES:
        assert isinstance(parse_tegrastats_line(line), TegrastatsSample), line


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_random_text_never_raises(text: str) -> None:
    result = parse_tegrastats_line(text)
    json.dumps(result.to_json())


_TOKENS = st.sampled_from(["RAM", "SWAP", "CPU", "[", "]", "%", "@", "/", "mW", "W", "C", "-256C", "off", "MB", "kB",
                           "GR3D_FREQ", "EMC_FREQ", " ", ",", "9" * 30, "-", ".", "(lfb", "x", "NC", "1.5.5", "@[",
                           "\n"])


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    line = draw(st.sampled_from(ALL_LINES))
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, len(line)))
        end = draw(st.integers(start, min(len(line), start + 20)))
        insert = draw(st.one_of(st.text(max_size=8), _TOKENS))
        line = line[:start] + insert + line[end:]
    return line


@settings(max_examples=600, deadline=None)
@given(mutated_lines())
def test_mutated_real_lines_never_raise(line: str) -> None:
    result = parse_tegrastats_line(line)
    payload = result.to_json()
    json.dumps(payload)
    if isinstance(result, TegrastatsSample):
        assert result.ram_used_bytes >= 0 and result.ram_total_bytes >= 0
        assert all(ratio is None or ratio >= 0 for ratio in result.cpu_util_ratio)
        assert len(result.cpu_util_ratio) == len(result.cpu_freq_hz)
        assert all(value > -256 for value in result.temperatures_celsius.values())
        assert "NC" not in result.power_watts and "pmic" not in result.temperatures_celsius

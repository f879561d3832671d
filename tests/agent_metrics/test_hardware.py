"""probe_hardware against fixture trees of Jetson boards, this machine, and an injected NVML."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil
import pytest

from jetfleet.agent.hardware import probe_hardware
from jetfleet.agent.metrics.nvml import NvmlAdapter
from jetfleet.protocol import GpuInfo

from .conftest import board
from .fakes import L4_GPU, OLD_GPU, FakeNvml

BOARDS = {
    "agx-orin-32gb-jp6": dict(model="NVIDIA Jetson AGX Orin Developer Kit", module="AGX Orin 32GB", soc="tegra234",
                              l4t="36.4.4", jetpack="6.2.1", cuda="12.6.68", tensorrt="10.3.0",
                              cpu_model="ARM Cortex-A78AE"),
    "orin-nano-8gb-jp5": dict(model="NVIDIA Jetson Orin Nano Developer Kit", module="Orin Nano 8GB", soc="tegra234",
                              l4t="35.3.1", jetpack="5.1.1", cuda="11.4.315", tensorrt="8.5.2",
                              cpu_model="ARM Cortex-A78AE"),
    "orin-nano-super-jp6": dict(model="NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
                                module="Orin Nano devkit", soc="tegra234", l4t="36.4.3", jetpack="6.2",
                                cuda="12.6.68", tensorrt="10.3.0", cpu_model="ARM Cortex-A78AE"),
    "xavier-nx-jp4": dict(model="NVIDIA Jetson Xavier NX Developer Kit", module="Xavier NX", soc="tegra194",
                          l4t="32.7.1", jetpack="4.6.1", cuda="10.2.300", tensorrt="8.2.1.9",
                          cpu_model="NVIDIA Carmel"),
}
IGPU = {"tegra234": ("Ampere iGPU (ga10b)", "8.7"), "tegra194": ("Volta iGPU (gv11b)", "7.2")}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_jetson_boards(name: str) -> None:
    info = probe_hardware(board(name))
    expected = BOARDS[name]
    assert info.platform == "jetson"
    assert {key: getattr(info, key) for key in expected} == expected
    gpu_name, capability = IGPU[expected["soc"]]
    assert info.gpus == [GpuInfo(name=gpu_name, type="integrated", compute_capability=capability)]
    assert info.memory_total_bytes == psutil.virtual_memory().total  # psutil: the machine the agent runs on


def write(root: Path, relative: str, content: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def test_unknown_l4t_release_keeps_l4t_and_leaves_jetpack_unknown(tmp_path: Path) -> None:
    write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 9.1, GCID: 1, BOARD: generic, EABI: aarch64\n")
    write(tmp_path, "proc/device-tree/compatible", "nvidia,p3701-0042\0nvidia,tegra234\0")
    info = probe_hardware(tmp_path)
    assert (info.platform, info.l4t, info.jetpack) == ("jetson", "36.9.1", None)
    assert info.module is None  # an unknown part number is not guessed
    assert info.soc == "tegra234"


def test_garbled_release_file_falls_back_to_dpkg(tmp_path: Path) -> None:
    write(tmp_path, "etc/nv_tegra_release", "R36 something else entirely\n")
    write(tmp_path, "var/lib/dpkg/status", "Package: nvidia-l4t-core\nStatus: install ok installed\n"
                                          "Version: 36.4.4-20250616085344\n\nPackage: other\nVersion: 1.0\n")
    info = probe_hardware(tmp_path)
    assert (info.l4t, info.jetpack) == ("36.4.4", "6.2.1")


def test_tensorrt_10_11_header_with_enterprise_indirection(tmp_path: Path) -> None:
    write(tmp_path, "usr/include/x86_64-linux-gnu/NvInferVersion.h",
          "#define TRT_MAJOR_ENTERPRISE 10\n#define TRT_MINOR_ENTERPRISE 13\n#define TRT_PATCH_ENTERPRISE 2\n"
          "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< major\n#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n"
          "#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n")
    write(tmp_path, "usr/local/cuda/version.json", "{not json")
    write(tmp_path, "usr/local/cuda/version.txt", "CUDA Version 12.8.93\n")
    info = probe_hardware(tmp_path, nvml=NvmlAdapter(FakeNvml([])))
    assert (info.tensorrt, info.cuda) == ("10.13.2", "12.8.93")


def test_this_machine() -> None:
    info = probe_hardware()
    arch = platform.machine()
    assert info.arch == arch
    if not Path("/etc/nv_tegra_release").exists():
        assert info.platform == {"x86_64": "x86_64", "aarch64": "aarch64"}.get(arch, "other")
    assert info.cpu_cores == os.cpu_count()
    assert info.kernel == platform.release()
    assert info.disk_total_bytes == psutil.disk_usage("/").total
    if arch == "x86_64":
        model_names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name")]
        assert info.cpu_model == model_names[0]
        assert (info.module, info.l4t, info.jetpack) == (None, None, None)


def test_nvml_gpus_on_x86(tmp_path: Path) -> None:
    fake = FakeNvml([L4_GPU, OLD_GPU])
    info = probe_hardware(tmp_path, nvml=NvmlAdapter(fake))
    assert info.gpus == [
        GpuInfo(name="NVIDIA L4", type="discrete", memory_total_bytes=24 * 2**30, compute_capability="8.9"),
        GpuInfo(name="Tesla K80", type="discrete", memory_total_bytes=12 * 2**30, compute_capability=None),
    ]
    assert not fake.shut_down  # the caller's adapter stays open


def test_jetson_never_lists_nvml_gpus() -> None:
    info = probe_hardware(board("agx-orin-32gb-jp6"), nvml=NvmlAdapter(FakeNvml([L4_GPU])))
    assert [gpu.type for gpu in info.gpus] == ["integrated"]

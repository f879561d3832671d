"""Which runtime serves which artifact on which machine (pure decisions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jetfleet.modelfiles.errors import ModelLoadError
from jetfleet.modelserver.selection import (
    RuntimeFacts,
    choose_runtime,
    cpu_fallback_warning,
    is_jetson,
    onnxruntime_providers,
)

JETSON = RuntimeFacts(tensorrt=True, cuda_devices=1)
X86_CPU = RuntimeFacts()
TRT_NO_GPU = RuntimeFacts(tensorrt=True, cuda_devices=0)


@pytest.mark.parametrize(("framework", "artifact", "facts", "requested", "runtime"), [
    ("onnx", "m.onnx", JETSON, "auto", "tensorrt-onnx"),
    ("onnx", "m.onnx", X86_CPU, "auto", "onnxruntime"),
    ("onnx", "m.onnx", TRT_NO_GPU, "auto", "onnxruntime"),
    ("onnx", "m.onnx", JETSON, "onnxruntime", "onnxruntime"),
    ("onnx", "m.onnx", JETSON, "tensorrt", "tensorrt-onnx"),
    ("tensorrt", "m.onnx", JETSON, "auto", "tensorrt-onnx"),
    ("tensorrt", "m.engine", JETSON, "auto", "tensorrt-engine"),
    ("tensorrt", "m.plan", JETSON, "tensorrt", "tensorrt-engine"),
    ("tensorrt", "m.onnx", X86_CPU, "onnxruntime", "onnxruntime"),
    ("pytorch", "m.pt", JETSON, "auto", "torchscript"),
    ("tensorflow", "m.keras", X86_CPU, "auto", "tensorflow"),
    ("sklearn", "m.pkl", X86_CPU, "auto", "sklearn"),
])
def test_runtime_choice(framework: str, artifact: str, facts: RuntimeFacts, requested: str, runtime: str) -> None:
    assert choose_runtime(framework, artifact, facts, requested) == runtime  # type: ignore[arg-type]


@pytest.mark.parametrize(("framework", "artifact", "facts", "requested", "message"), [
    ("tensorrt", "m.engine", X86_CPU, "auto", "TensorRT .* is not installed here"),
    ("tensorrt", "m.onnx", TRT_NO_GPU, "auto", "needs a CUDA GPU .*runtime=nvidia"),
    ("onnx", "m.onnx", X86_CPU, "tensorrt", "TensorRT .* is not installed here"),
    ("tensorrt", "m.engine", JETSON, "onnxruntime", "can only be served by TensorRT"),
    ("pytorch", "m.pt", JETSON, "tensorrt", "applies to ONNX/TensorRT models, not framework 'pytorch'"),
])
def test_impossible_choices_say_why(framework: str, artifact: str, facts: RuntimeFacts, requested: str,
                                    message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        choose_runtime(framework, artifact, facts, requested)  # type: ignore[arg-type]


def test_onnxruntime_uses_cuda_first_when_the_build_has_it() -> None:
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxruntime_providers(gpu_build) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnxruntime_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert onnxruntime_providers([]) == ["CPUExecutionProvider"]


CPU = "onnxruntime:CPUExecutionProvider"
JETSON_NO_PYCUDA = RuntimeFacts(jetson=True, missing=("pycuda",))


@pytest.mark.parametrize(("facts", "requested", "message"), [
    (JETSON_NO_PYCUDA, "auto", "CPU provider on a Jetson: pycuda did not import"),
    (RuntimeFacts(jetson=True, missing=("tensorrt", "pycuda")), "auto", "tensorrt and pycuda did not import"),
    (RuntimeFacts(tensorrt=True, jetson=True), "auto", "no CUDA device is visible .*runtime=nvidia"),
    (JETSON, "onnxruntime", "--runtime onnxruntime was given"),
    (RuntimeFacts(cuda_devices=2, missing=("tensorrt",)), "auto", r"with 2 CUDA device\(s\) present"),
])
def test_onnx_on_the_cpu_where_a_gpu_was_expected_is_said_out_loud(facts: RuntimeFacts, requested: str,
                                                                    message: str) -> None:
    warning = cpu_fallback_warning("onnxruntime", CPU, facts, requested)  # type: ignore[arg-type]
    assert warning is not None and re.search(message, warning), warning


def test_no_warning_where_the_cpu_is_all_there_is_or_a_gpu_serves() -> None:
    assert cpu_fallback_warning("onnxruntime", CPU, X86_CPU, "auto") is None
    assert cpu_fallback_warning("onnxruntime", "onnxruntime:CUDAExecutionProvider", JETSON_NO_PYCUDA, "auto") is None
    assert cpu_fallback_warning("tensorrt-onnx", "tensorrt:10.3.0", JETSON, "auto") is None


def test_a_jetson_is_recognised_by_its_l4t_release_file_or_device_tree(tmp_path: Path) -> None:
    release, compatible = tmp_path / "nv_tegra_release", tmp_path / "compatible"
    assert not is_jetson(release, compatible)
    compatible.write_bytes(b"nvidia,p3737-0000+p3701-0004\x00nvidia,p3701-0004\x00nvidia,tegra234\x00")
    assert is_jetson(release, compatible)
    compatible.write_bytes(b"raspberrypi,4-model-b\x00brcm,bcm2711\x00")
    assert not is_jetson(release, compatible)
    release.write_text("# R36 (release), REVISION: 4.4, GCID: 41062509, BOARD: generic, EABI: aarch64\n")
    assert is_jetson(release, compatible)

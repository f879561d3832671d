"""Which runtime serves which artifact on which machine (pure decisions)."""

from __future__ import annotations

import pytest

from jetfleet.modelfiles.errors import ModelLoadError
from jetfleet.modelserver.selection import RuntimeFacts, choose_runtime, onnxruntime_providers

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

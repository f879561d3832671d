"""Which runtime serves a model: a pure decision from the metadata and the facts of this machine.

The facts (is TensorRT importable, is there a CUDA GPU, which ONNX Runtime providers exist) are
gathered by :func:`probe_runtime_facts`; everything else here is pure and unit-tested.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from jetfleet.modelfiles.errors import ModelLoadError
from jetfleet.modelfiles.layout import Framework

log = logging.getLogger(__name__)

Runtime = Literal["tensorrt-engine", "tensorrt-onnx", "onnxruntime", "torchscript", "tensorflow", "sklearn"]
RuntimeRequest = Literal["auto", "tensorrt", "onnxruntime"]
RUNTIME_REQUESTS: tuple[RuntimeRequest, ...] = ("auto", "tensorrt", "onnxruntime")


@dataclass(frozen=True)
class RuntimeFacts:
    """What this machine can run (gathered once at start)."""

    tensorrt: bool = False  # tensorrt and pycuda both importable
    cuda_devices: int = 0


def choose_runtime(framework: Framework, artifact_name: str, facts: RuntimeFacts,
                   requested: RuntimeRequest = "auto") -> Runtime:
    """The runtime for this artifact; ``ModelLoadError`` says why none fits."""
    if framework in ("onnx", "tensorrt"):
        return _onnx_or_tensorrt(framework, artifact_name, facts, requested)
    if requested != "auto":
        raise ModelLoadError(f"--runtime {requested} applies to ONNX/TensorRT models, not framework '{framework}'")
    return _OTHER_RUNTIMES[framework]


_OTHER_RUNTIMES: dict[str, Runtime] = {"pytorch": "torchscript", "tensorflow": "tensorflow", "sklearn": "sklearn"}


def _onnx_or_tensorrt(framework: Framework, artifact_name: str, facts: RuntimeFacts,
                      requested: RuntimeRequest) -> Runtime:
    if artifact_name.lower().endswith((".engine", ".plan")):
        if requested == "onnxruntime":
            raise ModelLoadError(f"{artifact_name}: a TensorRT engine can only be served by TensorRT")
        _require_tensorrt(facts, artifact_name)
        return "tensorrt-engine"
    if requested == "onnxruntime":
        return "onnxruntime"
    if requested == "tensorrt" or framework == "tensorrt":
        _require_tensorrt(facts, artifact_name)
        return "tensorrt-onnx"
    return "tensorrt-onnx" if facts.tensorrt and facts.cuda_devices > 0 else "onnxruntime"


def _require_tensorrt(facts: RuntimeFacts, artifact_name: str) -> None:
    if not facts.tensorrt:
        raise ModelLoadError(f"{artifact_name}: TensorRT (tensorrt + pycuda) is not installed here; "
                             "serve .onnx with ONNX Runtime (framework 'onnx') or use the L4T model-server image")
    if facts.cuda_devices < 1:
        raise ModelLoadError(f"{artifact_name}: TensorRT needs a CUDA GPU and none is visible "
                             "(on Jetson, run the container with runtime=nvidia)")


def onnxruntime_providers(available: Iterable[str]) -> list[str]:
    """CUDA first when this ONNX Runtime build has it, CPU always as the fallback."""
    present = set(available)
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in present] or ["CPUExecutionProvider"]


def probe_runtime_facts() -> RuntimeFacts:
    """Look at this machine: TensorRT and pycuda importable, and the CUDA device count (via pycuda)."""
    if importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("pycuda") is None:
        return RuntimeFacts()
    try:
        import pycuda.driver as cuda

        cuda.init()
        return RuntimeFacts(tensorrt=True, cuda_devices=int(cuda.Device.count()))
    except Exception as exc:  # no driver, no device node: TensorRT cannot run here
        log.warning("TensorRT is installed but CUDA is not usable: %s", exc)
        return RuntimeFacts(tensorrt=True, cuda_devices=0)

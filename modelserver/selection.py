"""Which runtime serves a model: a pure decision from the metadata and the facts of this machine.

The facts (is TensorRT importable, is there a CUDA GPU, which ONNX Runtime providers exist) are
gathered by :func:`probe_runtime_facts`; everything else here is pure and unit-tested.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
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
    jetson: bool = False  # an NVIDIA Tegra board (L4T), where a CPU fallback is never what was meant
    missing: tuple[str, ...] = ()  # which of tensorrt, pycuda did not import


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


def cpu_fallback_warning(runtime: Runtime, backend: str, facts: RuntimeFacts, requested: RuntimeRequest) -> str | None:
    """Why a model ends up on ONNX Runtime's CPU provider where a GPU was to be expected (a Jetson, or a
    visible CUDA device), or None. The server logs it as a warning: it must never happen silently."""
    if runtime != "onnxruntime" or not backend.endswith("CPUExecutionProvider"):
        return None
    if not (facts.jetson or facts.cuda_devices > 0):
        return None
    if requested == "onnxruntime":
        why = "--runtime onnxruntime was given"
    elif facts.missing:
        why = f"{' and '.join(facts.missing)} did not import (use the L4T model-server image, which builds pycuda " \
              "against JetPack's CUDA and sees JetPack's TensorRT)"
    else:
        why = "no CUDA device is visible to this process (on a Jetson, run the container with runtime=nvidia)"
    where = "on a Jetson" if facts.jetson else f"with {facts.cuda_devices} CUDA device(s) present"
    return f"serving ONNX on ONNX Runtime's CPU provider {where}: {why}"


def is_jetson(release_file: Path = Path("/etc/nv_tegra_release"),
              compatible: Path = Path("/proc/device-tree/compatible")) -> bool:
    """L4T marks its boards in both places (the L4T images carry the release file too)."""
    try:
        return release_file.is_file() or b"nvidia,tegra" in compatible.read_bytes()
    except OSError:
        return False


def probe_runtime_facts() -> RuntimeFacts:
    """Look at this machine: TensorRT and pycuda importable, the CUDA device count (via pycuda), a Jetson."""
    jetson = is_jetson()
    missing = tuple(name for name in ("tensorrt", "pycuda") if importlib.util.find_spec(name) is None)
    if missing:
        return RuntimeFacts(jetson=jetson, missing=missing)
    try:
        import pycuda.driver as cuda

        cuda.init()
        return RuntimeFacts(tensorrt=True, cuda_devices=int(cuda.Device.count()), jetson=jetson)
    except Exception as exc:  # no driver, no device node: TensorRT cannot run here
        log.warning("TensorRT is installed but CUDA is not usable: %s", exc)
        return RuntimeFacts(tensorrt=True, cuda_devices=0, jetson=jetson)

"""Framework loaders. Each module imports its framework lazily, so a missing one only matters when used."""

from __future__ import annotations

from pathlib import Path

from jetfleet.modelfiles.layout import ModelMetadata
from jetfleet.modelserver.loaders.base import LoadedModel, LoadOptions
from jetfleet.modelserver.selection import Runtime


def load_model(artifact: Path, metadata: ModelMetadata, runtime: Runtime, options: LoadOptions) -> LoadedModel:
    """Load ``artifact`` (already verified against ``metadata``) with ``runtime``."""
    if runtime == "onnxruntime":
        from jetfleet.modelserver.loaders.onnx_runtime import OnnxRuntimeModel

        return OnnxRuntimeModel(artifact)
    if runtime in ("tensorrt-engine", "tensorrt-onnx"):
        from jetfleet.modelserver.loaders.tensorrt import load_tensorrt

        return load_tensorrt(artifact, metadata.sha256, options)
    if runtime == "torchscript":
        from jetfleet.modelserver.loaders.torchscript import TorchScriptModel

        return TorchScriptModel(artifact, metadata.declared_signature())
    if runtime == "tensorflow":
        from jetfleet.modelserver.loaders.tensorflow import load_tensorflow

        return load_tensorflow(artifact)
    from jetfleet.modelserver.loaders.sklearn import SklearnModel

    return SklearnModel(artifact, metadata.declared_signature())


__all__ = ["LoadOptions", "LoadedModel", "load_model"]

"""``read_signature``: a model file's input/output tensor specs, without a GPU, where the format allows.

The registry calls it at push time. It returns None where the format does not record a signature
or reading it would be unsafe, and raises ``ModelLoadError`` for a file that is not what its
framework says (so a bad push is refused early):

=========== ================================================================================
onnx        read from the graph (``onnx`` package, or an ONNX Runtime CPU session)
tensorrt    ``.onnx``: as above; ``.engine``/``.plan``: None (deserializing needs TensorRT and a GPU)
pytorch     None (TorchScript keeps no dtypes/shapes); a ``torch.save`` pickle is refused
tensorflow  loaded on the CPU with Keras (safe mode) or TensorFlow; needs jetfleet[tensorflow]
sklearn     None: reading it means unpickling, which runs code
=========== ================================================================================
"""

from __future__ import annotations

from pathlib import Path

from jetfleet.modelfiles.errors import ModelLoadError
from jetfleet.modelfiles.layout import Framework
from jetfleet.modelfiles.tensors import ModelSignature


def read_signature(path: Path, framework: Framework) -> ModelSignature | None:
    if not path.exists():
        raise ModelLoadError(f"{path}: not found")
    if framework in ("onnx", "tensorrt"):
        if path.suffix.lower() != ".onnx":
            return None
        from jetfleet.modelserver.loaders.onnx_runtime import read_onnx_signature

        return read_onnx_signature(path)
    if framework == "pytorch":
        from jetfleet.modelserver.loaders.torchscript import refuse_non_torchscript

        refuse_non_torchscript(path)
        return None
    if framework == "tensorflow":
        from jetfleet.modelserver.loaders.tensorflow import load_tensorflow

        return load_tensorflow(path).signature
    return None

"""ONNX Runtime: CUDA execution provider when this build has it, else CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.modelfiles.errors import MissingFrameworkError, ModelLoadError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.loaders.base import Arrays, outputs_by_name
from jetfleet.modelserver.selection import onnxruntime_providers

_ORT_TYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64",
    "tensor(string)": "BYTES",
}


class OnnxRuntimeModel:
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path) -> None:
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers etc. are noise here
        providers = onnxruntime_providers(ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load it: {exc}") from exc
        self.backend = f"onnxruntime:{self._session.get_providers()[0]}"
        self.signature = _session_signature(self._session, path)
        self._output_names = [spec.name for spec in self.signature.outputs]

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        feeds = {name: _ort_value(array) for name, array in inputs.items()}
        return outputs_by_name(self._output_names, self._session.run(self._output_names, feeds))


def _ort_value(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if array.dtype == np.object_:  # ONNX string tensors want str, KServe BYTES carries bytes
        decoded: np.ndarray[Any, Any] = np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item,
                                                     otypes=[object])(array)
        return decoded
    return array


def _session_signature(session: Any, path: Path) -> ModelSignature:
    return ModelSignature(
        inputs=tuple(_ort_spec(arg, "input", path) for arg in session.get_inputs()),
        outputs=tuple(_ort_spec(arg, "output", path) for arg in session.get_outputs()),
    )


def _ort_spec(arg: Any, kind: str, path: Path) -> TensorSpec:
    datatype = _ORT_TYPES.get(arg.type)
    if datatype is None:
        raise ModelLoadError(f"{path}: {kind} '{arg.name}' has type {arg.type}, which KServe v2 tensors cannot carry "
                             "(for skl2onnx classifiers convert with options={'zipmap': False})")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (arg.shape or []))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)  # type: ignore[arg-type]


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingFrameworkError("ONNX", "onnxruntime", "modelserver") from exc
    return onnxruntime


def read_onnx_signature(path: Path) -> ModelSignature:
    """The signature of an ONNX file without a GPU: via ``onnx`` when installed, else an ORT CPU session."""
    try:
        import onnx
    except ImportError:
        ort = _import_onnxruntime()
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"{path}: not a loadable ONNX model: {exc}") from exc
        return _session_signature(session, path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelLoadError(f"{path}: not a readable ONNX model: {exc}") from exc
    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = [value for value in model.graph.input if value.name not in initializers]
    return ModelSignature(inputs=tuple(_onnx_spec(value, "input", path) for value in graph_inputs),
                          outputs=tuple(_onnx_spec(value, "output", path) for value in model.graph.output))


def _onnx_spec(value: Any, kind: str, path: Path) -> TensorSpec:
    import onnx

    from jetfleet.modelfiles.dtypes import from_numpy

    if value.type.WhichOneof("value") != "tensor_type":
        raise ModelLoadError(f"{path}: {kind} '{value.name}' is not a tensor ({value.type.WhichOneof('value')}), "
                             "which KServe v2 cannot carry")
    tensor = value.type.tensor_type
    datatype = from_numpy(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim)
    return TensorSpec(name=value.name, datatype=datatype, shape=shape)  # type: ignore[arg-type]

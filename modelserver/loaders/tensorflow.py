"""TensorFlow/Keras: ``.keras`` and ``.h5`` through Keras (safe mode), SavedModel directories through TF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.modelfiles.dtypes import from_numpy
from jetfleet.modelfiles.errors import MissingFrameworkError, ModelLoadError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.loaders.base import Arrays, outputs_by_name

SERVING_SIGNATURE = "serving_default"


class KerasModel:
    platform = "tensorflow_keras"
    backend = "tensorflow:keras"

    def __init__(self, path: Path) -> None:
        keras = self._keras = _import("keras")
        try:  # safe_mode refuses Lambda layers that carry Python bytecode
            self._model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:  # keras raises ValueError, OSError, TypeError for bad files
            raise ModelLoadError(f"{path}: Keras cannot load it: {exc}") from exc
        self._input_names = [tensor.name for tensor in self._model.inputs]
        self._output_names = list(self._model.output_names)
        self.signature = ModelSignature(
            inputs=tuple(_spec(name, tensor.shape, tensor.dtype)
                         for name, tensor in zip(self._input_names, self._model.inputs, strict=True)),
            outputs=tuple(_spec(name, tensor.shape, tensor.dtype)
                          for name, tensor in zip(self._output_names, self._model.outputs, strict=True)),
        )

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        # The call must mirror the structure the model was built with (one tensor, a list or a dict).
        structured = self._keras.tree.map_structure(lambda tensor: inputs[tensor.name], self._model.input)
        result = self._model.predict_on_batch(structured)
        return outputs_by_name(self._output_names, self._keras.tree.flatten(result))


class SavedModel:
    platform = "tensorflow_savedmodel"
    backend = "tensorflow:savedmodel"

    def __init__(self, path: Path) -> None:
        tf = _import("tensorflow")
        try:
            loaded = tf.saved_model.load(str(path))
            self._function = loaded.signatures[SERVING_SIGNATURE]
        except KeyError:
            raise ModelLoadError(f"{path}: the SavedModel has no '{SERVING_SIGNATURE}' signature") from None
        except Exception as exc:
            raise ModelLoadError(f"{path}: TensorFlow cannot load the SavedModel: {exc}") from exc
        self._loaded = loaded  # keeps the variables alive
        self._tf = tf
        inputs = self._function.structured_input_signature[1]
        outputs = self._function.structured_outputs
        self.signature = ModelSignature(
            inputs=tuple(_spec(name, spec.shape, spec.dtype.as_numpy_dtype) for name, spec in sorted(inputs.items())),
            outputs=tuple(_spec(name, spec.shape, spec.dtype.as_numpy_dtype) for name, spec in sorted(outputs.items())),
        )

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        result = self._function(**{name: self._tf.constant(array) for name, array in inputs.items()})
        return {spec.name: result[spec.name].numpy() for spec in self.signature.outputs}


def load_tensorflow(path: Path) -> KerasModel | SavedModel:
    return SavedModel(path) if path.is_dir() else KerasModel(path)


def _spec(name: str, shape: Any, dtype: Any) -> TensorSpec:
    dims = tuple(-1 if dim is None else int(dim) for dim in tuple(shape))
    return TensorSpec(name=name, datatype=from_numpy(np.dtype(dtype)), shape=dims)  # type: ignore[arg-type]


def _import(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise MissingFrameworkError("TensorFlow/Keras", module, "tensorflow") from exc

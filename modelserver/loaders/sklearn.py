"""scikit-learn estimators stored as pickle/joblib.

Only reached after :func:`jetfleet.modelfiles.layout.verified_artifact` checked the sha256 and that
the signed manifest was verified: unpickling runs whatever code the file names.
Input: one 2-D tensor ``input`` (``[-1, n_features_in_]``, FP32 unless ``model.json`` says otherwise).
Outputs: ``predictions`` (``predict``) and, for classifiers, ``probabilities`` (``predict_proba``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.modelfiles.dtypes import from_numpy
from jetfleet.modelfiles.errors import MissingFrameworkError, ModelLoadError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.loaders.base import Arrays
from jetfleet.modelserver.warmup import example_inputs


class SklearnModel:
    platform = "sklearn"
    backend = "sklearn"

    def __init__(self, path: Path, declared: ModelSignature | None) -> None:
        self._estimator = _unpickle(path)
        if not callable(getattr(self._estimator, "predict", None)):
            raise ModelLoadError(f"{path}: the pickled object ({type(self._estimator).__name__}) has no predict()")
        inputs = _inputs(path, self._estimator, declared)
        self._input_name = inputs[0].name
        probe = self.infer(example_inputs(inputs))
        self.signature = ModelSignature(inputs=inputs, outputs=tuple(
            TensorSpec(name=name, datatype=from_numpy(value.dtype), shape=(-1, *value.shape[1:]))  # type: ignore[arg-type]
            for name, value in probe.items()))

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        features = inputs[self._input_name]
        outputs = {"predictions": np.asarray(self._estimator.predict(features))}
        if callable(getattr(self._estimator, "predict_proba", None)):
            outputs["probabilities"] = np.asarray(self._estimator.predict_proba(features))
        return outputs


def _inputs(path: Path, estimator: Any, declared: ModelSignature | None) -> tuple[TensorSpec, ...]:
    if declared is not None:
        if len(declared.inputs) != 1:
            raise ModelLoadError(f"{path}: scikit-learn models take one input tensor; model.json lists "
                                 f"{len(declared.inputs)}")
        return declared.inputs
    features = getattr(estimator, "n_features_in_", None)
    if not isinstance(features, int):
        raise ModelLoadError(f"{path}: the estimator does not say its number of features (n_features_in_); "
                             "list the input under 'inputs' in model.json")
    return (TensorSpec(name="input", datatype="FP32", shape=(-1, features)),)


def _unpickle(path: Path) -> Any:
    try:
        import sklearn  # noqa: F401 - the estimator classes the pickle names live there
    except ImportError as exc:
        raise MissingFrameworkError("scikit-learn", "sklearn", "sklearn") from exc
    try:
        if path.suffix.lower() == ".joblib":
            import joblib

            return joblib.load(path)
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as exc:  # unpickling can raise anything the pickled classes raise
        raise ModelLoadError(f"{path}: cannot unpickle: {exc}") from exc

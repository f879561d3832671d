"""Each framework loader with a real small model made here, loaded the way the server loads it."""

from __future__ import annotations

import asyncio
import pickle
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from jetfleet.modelfiles.errors import ModelLoadError, UnsafeModelError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.host import ModelHost, ServeSettings
from jetfleet.modelserver.introspect import read_signature
from jetfleet.modelserver.loaders import LoadedModel
from tests.modelserver.models import dense_expected, dense_onnx, install
from tests.support.system import require_module

X = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 4.0]], dtype=np.float32)


def serve_in_process(model_dir: Path, **settings: Any) -> LoadedModel:
    """Load ``model_dir`` through ModelHost (metadata, digest, runtime choice, loader, warm-up)."""
    host = ModelHost(ServeSettings(model_dir=model_dir, name=model_dir.parent.name, version=model_dir.name, port=1,
                                   **settings))
    try:
        asyncio.run(host.load())
        assert host.model is not None and host.state == "ready"
        return host.model
    finally:
        host.close()


# ---------------------------------------------------------------------------------------------- ONNX


def test_onnx_made_with_onnx_helper_runs_on_onnxruntime(tmp_path: Path) -> None:
    model = serve_in_process(dense_onnx(tmp_path))
    assert model.backend == "onnxruntime:CPUExecutionProvider"
    np.testing.assert_allclose(model.infer({"input": X})["output"], dense_expected(X), rtol=1e-5, atol=1e-6)
    assert read_signature(tmp_path / "dense" / "1" / "model.onnx", "onnx") == model.signature


def _iris_classifier() -> tuple[Any, np.ndarray[Any, Any]]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(features, labels), features[:5].astype(np.float32)


def test_onnx_converted_by_skl2onnx_serves_labels_and_probabilities(tmp_path: Path) -> None:
    skl2onnx = require_module("skl2onnx", "modelserver-dev")
    classifier, rows = _iris_classifier()
    onnx_model = skl2onnx.to_onnx(classifier, rows, options={"zipmap": False})
    model_dir = install(tmp_path, "iris", "2", "model.onnx",
                        write=lambda p: p.write_bytes(onnx_model.SerializeToString()))
    model = serve_in_process(model_dir)
    outputs = model.infer({"X": rows})
    np.testing.assert_array_equal(outputs["label"], classifier.predict(rows))
    np.testing.assert_allclose(outputs["probabilities"], classifier.predict_proba(rows), rtol=1e-4, atol=1e-5)


def test_onnx_outputs_that_are_not_tensors_are_refused_by_name(tmp_path: Path) -> None:
    skl2onnx = require_module("skl2onnx", "modelserver-dev")
    classifier, rows = _iris_classifier()
    onnx_model = skl2onnx.to_onnx(classifier, rows)  # default ZipMap: a sequence of maps
    model_dir = install(tmp_path, "iris", "1", "model.onnx",
                        write=lambda p: p.write_bytes(onnx_model.SerializeToString()))
    with pytest.raises(ModelLoadError, match=r"output 'output_probability' .*zipmap"):
        serve_in_process(model_dir)
    with pytest.raises(ModelLoadError, match="output 'output_probability' is not a tensor"):
        read_signature(model_dir / "model.onnx", "onnx")


def test_a_corrupt_onnx_file_is_a_load_error(tmp_path: Path) -> None:
    model_dir = install(tmp_path, "broken", "1", "model.onnx", write=lambda p: p.write_bytes(b"not a protobuf"))
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load it"):
        serve_in_process(model_dir)


def test_a_tensorrt_engine_needs_tensorrt(tmp_path: Path) -> None:
    model_dir = install(tmp_path, "trt", "1", "model.engine", write=lambda p: p.write_bytes(b"engine bytes"))
    with pytest.raises(ModelLoadError, match=r"TensorRT \(tensorrt \+ pycuda\) is not installed here"):
        serve_in_process(model_dir)
    assert read_signature(model_dir / "model.engine", "tensorrt") is None


# ---------------------------------------------------------------------------------------------- PyTorch

SUM_INPUTS = ModelSignature(inputs=(TensorSpec(name="features", datatype="FP32", shape=(-1, 4)),
                                    TensorSpec(name="offset", datatype="FP32", shape=(1,))), outputs=())


def _torch_module() -> Any:
    require_module("torch", "pytorch")
    from tests.modelserver.torch_models import Scorer

    return Scorer().eval()


def _save_torchscript(module: Any, path: Path) -> None:
    torch = require_module("torch", "pytorch")
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; the model server still serves it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), str(path))


def test_torchscript_with_inputs_from_model_json(tmp_path: Path) -> None:
    torch = require_module("torch", "pytorch")
    module = _torch_module()
    model_dir = install(tmp_path, "scorer", "3", "model.pt", signature=SUM_INPUTS,
                        write=lambda p: _save_torchscript(module, p))
    model = serve_in_process(model_dir)
    offset = np.array([0.5], dtype=np.float32)
    outputs = model.infer({"features": X, "offset": offset})
    with torch.no_grad():
        scores, best = module(torch.from_numpy(X), torch.from_numpy(offset))
    np.testing.assert_allclose(outputs["output__0"], scores.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(outputs["output__1"], best.numpy())
    assert [spec.datatype for spec in model.signature.outputs] == ["FP32", "INT64"]
    assert read_signature(model_dir / "model.pt", "pytorch") is None  # TorchScript keeps no shapes


def test_torchscript_without_declared_inputs_says_what_to_add(tmp_path: Path) -> None:
    model_dir = install(tmp_path, "scorer", "1", "model.pt", write=lambda p: _save_torchscript(_torch_module(), p))
    with pytest.raises(ModelLoadError, match="forward arguments: features, offset"):
        serve_in_process(model_dir)


def test_a_bare_state_dict_is_refused_with_the_reason(tmp_path: Path) -> None:
    torch = require_module("torch", "pytorch")
    model_dir = install(tmp_path, "scorer", "1", "weights.pth", signature=SUM_INPUTS,
                        write=lambda p: torch.save(_torch_module().state_dict(), str(p)))
    message = r"torch.save\(\) pickle \(e.g. a bare state_dict\), not a TorchScript archive: it holds weights"
    with pytest.raises(ModelLoadError, match=message):
        serve_in_process(model_dir)
    with pytest.raises(ModelLoadError, match=r"torch\.jit\.script"):
        read_signature(model_dir / "weights.pth", "pytorch")


# ---------------------------------------------------------------------------------------------- TensorFlow


def _keras_model() -> Any:
    keras = require_module("keras", "tensorflow")
    require_module("tensorflow", "tensorflow")
    keras.utils.set_random_seed(0)
    features = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(features)
    scores = keras.layers.Dense(3, name="scores")(hidden)
    value = keras.layers.Dense(1, name="value")(hidden)
    return keras.Model(features, [scores, value])


# Keras 3.15 on TensorFlow 2.21 converts tensors with np.array(x, copy=False) semantics numpy 2 deprecates.
KERAS_NUMPY2 = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@KERAS_NUMPY2
@pytest.mark.parametrize("artifact", ["model.keras", "model.h5", "saved_model"])
def test_keras_and_savedmodel(tmp_path: Path, artifact: str) -> None:
    keras_model = _keras_model()
    expected = [np.asarray(output) for output in keras_model.predict_on_batch(X)]

    def save(path: Path) -> None:
        if artifact == "saved_model":
            keras_model.export(str(path), verbose=False)
        else:
            keras_model.save(str(path))

    model_dir = install(tmp_path, "kmodel", "1", artifact, framework="tensorflow", write=save)
    model = serve_in_process(model_dir)
    outputs = model.infer({spec.name: X for spec in model.signature.inputs})
    assert [spec.shape for spec in model.signature.outputs] in ([(-1, 3), (-1, 1)], [(-1, 3), (-1, 1)][::-1])
    by_width = {value.shape[1]: value for value in outputs.values()}
    np.testing.assert_allclose(by_width[3], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_width[1], expected[1], rtol=1e-5, atol=1e-6)
    assert read_signature(model_dir / artifact, "tensorflow") == model.signature


@KERAS_NUMPY2
def test_keras_names_come_from_the_model(tmp_path: Path) -> None:
    keras_model = _keras_model()
    model_dir = install(tmp_path, "kmodel", "1", "model.keras", write=lambda p: keras_model.save(str(p)))
    signature = read_signature(model_dir / "model.keras", "tensorflow")
    assert signature == ModelSignature(
        inputs=(TensorSpec(name="features", datatype="FP32", shape=(-1, 4)),),
        outputs=(TensorSpec(name="scores", datatype="FP32", shape=(-1, 3)),
                 TensorSpec(name="value", datatype="FP32", shape=(-1, 1))))


# ---------------------------------------------------------------------------------------------- scikit-learn


@pytest.mark.parametrize("artifact", ["model.pkl", "model.joblib"])
def test_sklearn_pickle_from_a_verified_manifest(tmp_path: Path, artifact: str) -> None:
    classifier, rows = _iris_classifier()

    def save(path: Path) -> None:
        if artifact.endswith(".joblib"):
            import joblib

            joblib.dump(classifier, path)
        else:
            path.write_bytes(pickle.dumps(classifier))

    model = serve_in_process(install(tmp_path, "iris", "1", artifact, manifest_verified=True, write=save))
    outputs = model.infer({"input": rows})
    np.testing.assert_array_equal(outputs["predictions"], classifier.predict(rows))
    np.testing.assert_allclose(outputs["probabilities"], classifier.predict_proba(rows), rtol=1e-6)
    assert model.signature.inputs == (TensorSpec(name="input", datatype="FP32", shape=(-1, 4)),)
    assert [spec.to_json() for spec in model.signature.outputs] == [
        {"name": "predictions", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}]
    assert read_signature(tmp_path / "iris" / "1" / artifact, "sklearn") is None  # never unpickled at push time


class Tripwire:
    """Unpickling this runs code: it records that it did."""

    ran: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Tripwire.ran.append, ("unpickled",))


def test_a_pickle_without_a_verified_manifest_is_never_unpickled(tmp_path: Path) -> None:
    model_dir = install(tmp_path, "iris", "1", "model.pkl", manifest_verified=False,
                        write=lambda p: p.write_bytes(pickle.dumps(Tripwire())))
    with pytest.raises(UnsafeModelError, match="refusing to load a pickle-based artifact"):
        serve_in_process(model_dir)
    assert Tripwire.ran == []

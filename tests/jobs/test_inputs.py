"""Job input files -> tensors, checked against the model's declared inputs; bad files name the file and reason."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from jetfleet.agent.jobs.inputs import InputError, parse_input
from jetfleet.manifest import TensorSpecEntry

ONE = (TensorSpecEntry(name="input", datatype="FP32", shape=(-1, 4)),)
TWO = (TensorSpecEntry(name="image", datatype="UINT8", shape=(-1, 2, 2)),
       TensorSpecEntry(name="meta", datatype="INT64", shape=(-1, 3)))


def npy(array: np.ndarray) -> bytes:  # type: ignore[type-arg]
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz(**arrays: np.ndarray) -> bytes:  # type: ignore[type-arg]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npy_is_one_request_for_the_single_input() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensors = parse_input(npy(x), "batch.npy", ONE)
    assert list(tensors) == ["input"] and np.array_equal(tensors["input"], x)


def test_npz_json_and_csv_are_read() -> None:
    image, meta = np.zeros((2, 2, 2), dtype=np.uint8), np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    tensors = parse_input(npz(image=image, meta=meta), "two.npz", TWO)
    assert np.array_equal(tensors["meta"], meta) and tensors["image"].dtype == np.uint8
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    tensors = parse_input(json.dumps(body).encode(), "req.json", ONE)
    assert tensors["input"].dtype == np.float32 and tensors["input"].shape == (1, 4)
    tensors = parse_input(b"a,b,c,d\n1,2,3,4\n5,6,7,8.5\n", "rows.csv", ONE)
    assert tensors["input"].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8.5]] and tensors["input"].dtype == np.float32


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("wrong-dtype.npy", npy(np.zeros((2, 4), dtype=np.float64)), "dtype float64 (FP64), the model expects FP32"),
    ("wrong-shape.npy", npy(np.zeros((2, 5), dtype=np.float32)), "shape [2, 5], the model expects [-1, 4]"),
    ("rank.npy", npy(np.zeros(4, dtype=np.float32)), "shape [4], the model expects [-1, 4]"),
    ("garbage.npy", b"not numpy at all", "is not a numpy npy file"),
    ("pickle.npy", npy(np.array([{"a": 1}], dtype=object)), "is not a numpy npy file without pickles"),
    ("bad.json", b"{not json", "Expecting property name"),
    ("shape.json", json.dumps({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                           "data": [1, 2]}]}).encode(), "2 values do not fit shape [2, 4]"),
    ("unknown.json", json.dumps([{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                  "data": [1, 2, 3, 4]}]).encode(), "unknown input x; the model's inputs are input"),
    ("ragged.csv", b"1,2,3,4\n5,6,7\n", "rows have different numbers of columns (3, 4)"),
    ("text.csv", b"a,b,c,d\n1,2,3,4\nx,2,3,4\n", "data row 2 is not numeric"),
    ("narrow.csv", b"1,2,3\n", "shape [1, 3], the model expects [-1, 4]"),
    ("empty.csv", b"", "no data rows"),
])
def test_bad_files_name_the_file_and_the_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_input(data, name, ONE)
    assert caught.value.filename == name
    assert reason in caught.value.reason, caught.value.reason
    assert str(caught.value).startswith(f"{name}: ")


def test_single_input_formats_refuse_a_model_with_two_inputs_and_npz_must_be_complete() -> None:
    with pytest.raises(InputError, match="fits a model with one input; this model has 2"):
        parse_input(npy(np.zeros((1, 2, 2), dtype=np.uint8)), "one.npy", TWO)
    with pytest.raises(InputError, match="missing input meta"):
        parse_input(npz(image=np.zeros((1, 2, 2), dtype=np.uint8)), "half.npz", TWO)


def test_without_a_signature_files_are_read_unchecked() -> None:
    tensors = parse_input(npy(np.ones((2, 7), dtype=np.float64)), "x.npy", None)
    assert tensors["input"].shape == (2, 7)

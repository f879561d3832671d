"""Job input files -> named tensors, checked against the model's declared inputs (pure).

* ``.npy``: one request for a model with a single input; the first dimension is the batch.
* ``.npz``: one array per input tensor name.
* ``.json``: KServe v2 ``inputs`` (``{"inputs": [{"name", "shape", "datatype", "data"}, ...]}`` or the list).
* ``.csv``: rows = batch, columns = the features of a single 2-D input (a non-numeric first row is a header).

Numpy files must carry the declared dtype exactly; JSON must name it; CSV values are converted to it.
Anything else raises :class:`InputError` naming the file and the reason.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from jetfleet.golden import GoldenError, load_tensors
from jetfleet.manifest import TensorSpecEntry
from jetfleet.modelfiles.dtypes import from_numpy, to_numpy

SUFFIXES = (".npy", ".npz", ".json", ".csv")
DEFAULT_INPUT = "input"  # the tensor name of a .npy/.csv file when the model's inputs are unknown
Array = np.ndarray[Any, Any]
Signature = Sequence[TensorSpecEntry]


class InputError(ValueError):
    def __init__(self, filename: str, reason: str) -> None:
        super().__init__(f"{filename}: {reason}")
        self.filename = filename
        self.reason = reason


def is_input_file(filename: str) -> bool:
    return filename.lower().endswith(SUFFIXES) and not filename.startswith(".")


def parse_input(data: bytes, filename: str, signature: Signature | None) -> dict[str, Array]:
    """The tensors of one input file, validated against ``signature`` (None: not validated)."""
    suffix = filename.lower().rsplit(".", 1)[-1]
    try:
        if suffix in ("npy", "npz"):
            tensors = _numpy(data, filename, signature)
        elif suffix == "json":
            tensors = _kserve_json(data, signature)
        elif suffix == "csv":
            tensors = _csv(data, signature)
        else:
            raise ValueError(f"unsupported file type .{suffix} (use {', '.join(SUFFIXES)})")
        if signature is not None:
            check(tensors, signature)
    except (GoldenError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(filename, str(exc).removeprefix(f"{filename}: ").removeprefix(f"{filename} ")) from exc
    return tensors


def _single(signature: Signature | None, what: str) -> TensorSpecEntry | None:
    if signature is None:
        return None
    if len(signature) != 1:
        names = ", ".join(s.name for s in signature)
        raise ValueError(f"a {what} file fits a model with one input; this model has {len(signature)} ({names}): "
                         "use .npz or .json with one tensor per input")
    return signature[0]


def _numpy(data: bytes, filename: str, signature: Signature | None) -> dict[str, Array]:
    tensors = load_tensors(data, filename)
    if "" in tensors:
        spec = _single(signature, ".npy")
        return {spec.name if spec else DEFAULT_INPUT: tensors[""]}
    return tensors


def _kserve_json(data: bytes, signature: Signature | None) -> dict[str, Array]:
    body = json.loads(data)
    entries = body.get("inputs") if isinstance(body, dict) else body
    if not isinstance(entries, list) or not entries:
        raise ValueError('expected KServe v2 inputs: {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    tensors: dict[str, Array] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "shape", "datatype", "data"} <= entry.keys():
            raise ValueError(f"inputs[{position}] needs name, shape, datatype and data")
        name, datatype = str(entry["name"]), str(entry["datatype"])
        if datatype == "BYTES":
            array = np.array([str(item) for item in np.ravel(entry["data"])], dtype=object)
        else:
            array = np.asarray(entry["data"], dtype=to_numpy(datatype))
        try:
            tensors[name] = array.reshape([int(dim) for dim in entry["shape"]])
        except ValueError as exc:
            raise ValueError(f"input {name}: {array.size} values do not fit shape {entry['shape']}") from exc
    return tensors


def _csv(data: bytes, signature: Signature | None) -> dict[str, Array]:
    spec = _single(signature, ".csv")
    rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]
    if rows and not _numeric(rows[0]):
        rows = rows[1:]  # a header
    if not rows:
        raise ValueError("no data rows")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise ValueError(f"rows have different numbers of columns ({', '.join(map(str, sorted(widths)))})")
    dtype = to_numpy(spec.datatype) if spec else np.dtype(np.float32)
    for number, row in enumerate(rows, start=1):
        if not _numeric(row):
            raise ValueError(f"data row {number} is not numeric: {','.join(row)[:80]}")
    values = np.array([[float(cell) for cell in row] for row in rows], dtype=np.float64)
    if dtype.kind in "iub" and not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"values are not whole numbers, the model expects {spec.datatype if spec else dtype}")
    return {spec.name if spec else DEFAULT_INPUT: values.astype(dtype)}


def _numeric(row: Sequence[str]) -> bool:
    try:
        [float(cell) for cell in row]
    except ValueError:
        return False
    return True


def check(tensors: dict[str, Array], signature: Signature) -> None:
    """Names, datatypes and shapes against the model's declared inputs (-1: any size)."""
    names = [spec.name for spec in signature]
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise ValueError(f"unknown input {', '.join(unknown)}; the model's inputs are {', '.join(names)}")
    missing = [name for name in names if name not in tensors]
    if missing:
        raise ValueError(f"missing input {', '.join(missing)}")
    for spec in signature:
        array = tensors[spec.name]
        datatype = from_numpy(array.dtype)
        if datatype != spec.datatype:
            raise ValueError(f"input {spec.name}: dtype {array.dtype} ({datatype}), the model expects "
                             f"{spec.datatype}")
        if len(array.shape) != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)):
            raise ValueError(f"input {spec.name}: shape {list(array.shape)}, the model expects "
                             f"{list(spec.shape)} (-1 means any size)")


def request_body(tensors: dict[str, Array]) -> dict[str, Any]:
    """A KServe v2 JSON inference request."""
    return {"inputs": [{"name": name, "datatype": from_numpy(array.dtype), "shape": list(array.shape),
                        "data": array.reshape(-1).tolist()} for name, array in tensors.items()]}

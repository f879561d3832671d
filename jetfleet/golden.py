"""Golden input/output pairs for the OTA health gate (numpy ``.npy`` or ``.npz`` files).

A ``.npy`` file holds one tensor: the model's only input (or its first output). A ``.npz`` file holds
tensors by name. The registry validates a pair at push time; the agent sends the input to the
candidate model server over KServe v2 JSON and compares the answer within ``rtol``/``atol``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jetfleet.errors import PermanentError

if TYPE_CHECKING:
    import numpy as np

    Array = np.ndarray[Any, Any]
else:
    Array = Any

_KSERVE_DTYPES = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
                  "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
                  "float32": "FP32", "float64": "FP64"}
GOLDEN_SUFFIXES = (".npy", ".npz")


class GoldenError(PermanentError):
    """A golden file is unreadable or does not fit the model."""


def load_tensors(data: bytes, filename: str) -> dict[str, Array]:
    """Tensors of a ``.npy`` (one, named ``""``) or ``.npz`` file; never unpickles."""
    import numpy as np

    try:
        if filename.lower().endswith(".npz"):
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                tensors = {key: archive[key] for key in archive.files}
        else:
            tensors = {"": np.load(io.BytesIO(data), allow_pickle=False)}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise GoldenError(f"{filename} is not a numpy {filename.rsplit('.', 1)[-1]} file without pickles: {exc}") \
            from exc
    if not tensors:
        raise GoldenError(f"{filename} holds no arrays")
    for name, array in tensors.items():
        if array.dtype.name not in _KSERVE_DTYPES:
            raise GoldenError(f"{filename}: array {name or '(npy)'} has dtype {array.dtype}, which KServe v2 "
                              f"cannot carry (use one of {', '.join(_KSERVE_DTYPES)})")
    return tensors


def bind(tensors: Mapping[str, Array], names: Sequence[str] | None, what: str) -> dict[str, Array]:
    """Name the tensors after the model's ``names`` (inputs or outputs) when known."""
    if "" in tensors:  # a .npy file
        if names is None:
            return dict(tensors)
        if what == "input" and len(names) != 1:
            raise GoldenError(f"a .npy golden input fits a model with one input; this model has {len(names)} "
                              f"({', '.join(names)}): use a .npz file with one array per input")
        return {names[0]: tensors[""]}
    if names is not None:
        unknown = sorted(set(tensors) - set(names))
        if unknown:
            raise GoldenError(f"golden {what} names {', '.join(unknown)}, but the model's {what}s are "
                              f"{', '.join(names)}")
        if what == "input" and set(names) - set(tensors):
            raise GoldenError(f"golden input lacks {', '.join(sorted(set(names) - set(tensors)))}")
    return dict(tensors)


def infer_request(inputs: Mapping[str, Array], default_name: str = "input") -> dict[str, Any]:
    """A KServe v2 JSON inference request for ``inputs``."""
    return {"inputs": [{"name": name or default_name, "datatype": _KSERVE_DTYPES[array.dtype.name],
                        "shape": list(array.shape), "data": array.reshape(-1).tolist()}
                       for name, array in inputs.items()]}


def compare(expected: Mapping[str, Array], response: Mapping[str, Any], rtol: float, atol: float) -> str | None:
    """None when every expected output matches the KServe v2 response; else what differs."""
    import numpy as np

    outputs = {o.get("name"): o for o in response.get("outputs", [])}
    for name, want in expected.items():
        got_entry = outputs.get(name) if name else next(iter(outputs.values()), None)
        if got_entry is None:
            return f"output {name or '(first)'} missing from the answer"
        try:
            got = np.asarray(got_entry["data"], dtype=want.dtype).reshape(got_entry["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            return f"output {name or got_entry.get('name')} unreadable: {exc}"
        if got.shape != want.shape:
            return f"output {got_entry.get('name')} has shape {list(got.shape)}, expected {list(want.shape)}"
        if not np.allclose(got, want, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
            return f"output {got_entry.get('name')} differs by up to {worst:.6g} (rtol {rtol:g}, atol {atol:g})"
    return None

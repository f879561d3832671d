"""Example inputs for warm-up and signature probing: zeros of each input's shape (dynamic dims = 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jetfleet.modelfiles.dtypes import to_numpy
from jetfleet.modelfiles.tensors import TensorSpec


def example_inputs(specs: Sequence[TensorSpec], dynamic: int = 1) -> dict[str, np.ndarray[Any, Any]]:
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for spec in specs:
        shape = spec.example_shape(dynamic)
        if spec.datatype == "BYTES":
            arrays[spec.name] = np.full(shape, b"", dtype=np.object_)
        else:
            arrays[spec.name] = np.zeros(shape, dtype=to_numpy(spec.datatype))
    return arrays

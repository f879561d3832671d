"""Per-feature KLL sketches (Apache DataSketches) of a run's inputs and outputs, and the idempotency keys.

A feature is one index of a tensor's last dimension (other dimensions flattened; a 1-D tensor is one
feature). Non-numeric tensors (BYTES) are not sketched; nor are tensors with more than ``MAX_FEATURES``
features (an image: drift on raw pixels says little, and the sketches would outweigh the results).
Non-finite values are left out. (Imported only when a job runs: numpy and DataSketches stay out of an
agent that runs no job.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import numpy as np
from datasketches import kll_floats_sketch

from jetfleet.agent.jobs.keys import Partial

KLL_K = 200
MAX_FEATURES = 1024
Array = np.ndarray[Any, Any]


def columns(array: Array) -> Array | None:
    """The tensor as rows x features (float64), or None when it is not sketched."""
    if array.dtype.kind not in "iufb" or array.size == 0:
        return None
    matrix = array.reshape(-1, 1) if array.ndim <= 1 else array.reshape(-1, array.shape[-1])
    if matrix.shape[1] > MAX_FEATURES:
        return None
    return matrix.astype(np.float64)


def partials(kind: str, tensors: dict[str, Array]) -> list[Partial]:
    found = []
    for name, array in sorted(tensors.items()):
        matrix = columns(np.asarray(array))
        if matrix is None:
            continue
        for index in range(matrix.shape[1]):
            column = matrix[:, index]
            column = column[np.isfinite(column)]
            if column.size == 0:
                continue
            sketch = kll_floats_sketch(KLL_K)
            sketch.update(column.astype(np.float32))
            found.append(Partial(kind, name, index, bytes(sketch.serialize())))
    return found


def merged(blobs: Iterable[bytes]) -> tuple[int, str]:
    """The count and base64 serialization of the merge of serialized sketches."""
    total = kll_floats_sketch(KLL_K)
    for blob in blobs:
        total.merge(kll_floats_sketch.deserialize(blob))
    return int(total.n), base64.b64encode(total.serialize()).decode()

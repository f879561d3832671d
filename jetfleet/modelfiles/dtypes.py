"""KServe v2 tensor datatypes and their numpy equivalents."""

from __future__ import annotations

import numpy as np

# BF16 has no numpy dtype; it is refused with a clear message where it appears.
KSERVE_TO_NUMPY: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
DATATYPES = tuple(KSERVE_TO_NUMPY)

_NUMPY_TO_KSERVE = {dtype: name for name, dtype in KSERVE_TO_NUMPY.items() if name != "BYTES"}


def to_numpy(datatype: str) -> np.dtype[np.generic]:
    """The numpy dtype of a KServe datatype; ``ValueError`` names the unsupported one."""
    try:
        return KSERVE_TO_NUMPY[datatype]
    except KeyError:
        raise ValueError(f"unsupported datatype {datatype!r}; supported: {', '.join(DATATYPES)}") from None


def from_numpy(dtype: np.dtype[np.generic] | type) -> str:
    """The KServe datatype of a numpy dtype (strings and bytes map to BYTES)."""
    dtype = np.dtype(dtype)
    if dtype.kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return _NUMPY_TO_KSERVE[dtype.newbyteorder("=")]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no KServe v2 datatype") from None

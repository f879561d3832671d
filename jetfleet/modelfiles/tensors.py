"""Tensor specs: the input/output signature a model declares, in KServe v2 terms.

A dimension of ``-1`` accepts any size (a dynamic batch, a symbolic ONNX dimension).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                   "FP16", "FP32", "FP64", "BYTES"]
Dim = Annotated[int, Field(ge=-1)]


class TensorSpec(BaseModel):
    """One named tensor: its KServe datatype and shape (``-1`` = any size)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1)]
    datatype: Datatype
    shape: tuple[Dim, ...]

    def describe(self) -> str:
        return f"'{self.name}' ({self.datatype} {list(self.shape)})"

    def accepts_shape(self, shape: Sequence[int]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(want in (-1, got) for want, got in zip(self.shape, shape, strict=True))

    def example_shape(self, dynamic: int = 1) -> tuple[int, ...]:
        """A concrete shape for warm-up: every dynamic dimension becomes ``dynamic``."""
        return tuple(dynamic if dim == -1 else dim for dim in self.shape)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class ModelSignature(BaseModel):
    """The inputs and outputs of a model, in the order the model declares them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.outputs if spec.name == name), None)


def describe_all(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(spec.describe() for spec in specs) or "(none)"

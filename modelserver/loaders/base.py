"""What every framework loader returns: a loaded model with a signature and an ``infer`` call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from jetfleet.modelfiles.tensors import ModelSignature
from jetfleet.modelserver.engine_cache import Precision

Arrays = Mapping[str, "np.ndarray[Any, Any]"]


class LoadedModel(Protocol):
    """A model ready for inference. ``infer`` is called from one thread only (the model thread)."""

    @property
    def platform(self) -> str:
        """The KServe ``platform`` string, e.g. ``onnxruntime_onnx``."""

    @property
    def backend(self) -> str:
        """What actually runs it, for logs and metrics, e.g. ``onnxruntime:CPUExecutionProvider``."""

    @property
    def signature(self) -> ModelSignature: ...

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]: ...


@dataclass(frozen=True)
class LoadOptions:
    """Knobs that change how (not what) a model is loaded."""

    precision: Precision = "fp16"
    engine_cache_dir: Path | None = None
    max_batch: int = 8


def outputs_by_name(names: list[str], values: list[Any]) -> dict[str, np.ndarray[Any, Any]]:
    if len(names) != len(values):
        raise RuntimeError(f"model returned {len(values)} outputs, its signature names {len(names)}: {names}")
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}

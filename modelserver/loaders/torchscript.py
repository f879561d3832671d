"""PyTorch TorchScript (``torch.jit.save`` archives). Plain ``torch.save`` pickles are refused.

TorchScript records argument names but not tensor dtypes or shapes, so the inputs come from
``model.json``; the outputs are found by one warm-up call.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.modelfiles.dtypes import from_numpy
from jetfleet.modelfiles.errors import MissingFrameworkError, ModelLoadError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.loaders.base import Arrays, outputs_by_name
from jetfleet.modelserver.warmup import example_inputs

_NOT_TORCHSCRIPT = ("{path}: this is a torch.save() pickle ({what}), not a TorchScript archive: it holds weights "
                    "but no model code, and unpickling it would run arbitrary code. Export the model with "
                    "torch.jit.script(model) or torch.jit.trace(model, example) and torch.jit.save(...)")


class TorchScriptModel:
    platform = "pytorch_libtorch"

    def __init__(self, path: Path, declared: ModelSignature | None) -> None:
        refuse_non_torchscript(path)
        torch = _import_torch()
        self._torch = torch
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.backend = f"torchscript:{self._device.type}"
        try:
            with warnings.catch_warnings():  # recent torch deprecates TorchScript, the format this loader serves
                warnings.filterwarnings("ignore", r".*torch\.jit\..* is deprecated", DeprecationWarning)
                self._module = torch.jit.load(str(path), map_location=self._device).eval()
        except Exception as exc:  # torch raises RuntimeError with the archive's complaint
            raise ModelLoadError(f"{path}: torch.jit.load failed: {exc}") from exc
        inputs = self._inputs(path, declared)
        self._input_names = [spec.name for spec in inputs]
        probe = self._run(example_inputs(inputs))
        self._output_names = _output_names(declared, len(probe))
        self.signature = ModelSignature(inputs=inputs, outputs=tuple(
            TensorSpec(name=name, datatype=from_numpy(value.dtype), shape=(-1, *value.shape[1:]))  # type: ignore[arg-type]
            for name, value in zip(self._output_names, probe, strict=True)))

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray[Any, Any]]:
        return outputs_by_name(self._output_names, self._run(inputs))

    def _inputs(self, path: Path, declared: ModelSignature | None) -> tuple[TensorSpec, ...]:
        arguments = [arg.name for arg in self._module.forward.schema.arguments[1:]]
        if declared is None:
            raise ModelLoadError(f"{path}: TorchScript does not record input dtypes and shapes; list the inputs "
                                 f"(forward arguments: {', '.join(arguments)}) under 'inputs' in model.json")
        if len(declared.inputs) != len(arguments):
            raise ModelLoadError(f"{path}: model.json lists {len(declared.inputs)} inputs but forward() takes "
                                 f"{len(arguments)}: {', '.join(arguments)}")
        return declared.inputs

    def _run(self, inputs: Arrays) -> list[np.ndarray[Any, Any]]:
        torch = self._torch
        tensors = [torch.from_numpy(np.require(inputs[name], requirements=["C", "W"])).to(self._device)
                   for name in self._input_names]
        with torch.inference_mode():
            result = self._module(*tensors)
        return [value.detach().cpu().numpy() for value in _flatten(result)]


def _flatten(result: Any) -> list[Any]:
    if isinstance(result, (tuple, list)):
        return list(result)
    if isinstance(result, dict):
        return list(result.values())
    return [result]


def _output_names(declared: ModelSignature | None, count: int) -> list[str]:
    if declared is not None and len(declared.outputs) == count:
        return [spec.name for spec in declared.outputs]
    return [f"output__{index}" for index in range(count)]


def refuse_non_torchscript(path: Path) -> None:
    """Raise a clear error unless ``path`` is a TorchScript archive (code + constants, not just data)."""
    if not zipfile.is_zipfile(path):
        raise ModelLoadError(_NOT_TORCHSCRIPT.format(path=path, what="legacy non-zip format"))
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name.endswith("/constants.pkl") for name in names) or not any("/code/" in name for name in names):
        raise ModelLoadError(_NOT_TORCHSCRIPT.format(path=path, what="e.g. a bare state_dict"))


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingFrameworkError("PyTorch", "torch", "pytorch") from exc
    return torch

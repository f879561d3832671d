"""Errors of the model server, as children of :mod:`jetfleet.errors`.

::

    PermanentError
    ├── ModelLoadError               the model in the model directory cannot be served (message says why)
    │   ├── MissingFrameworkError    the library for this format is not installed in this image
    │   ├── IntegrityError           the artifact's sha256 differs from the metadata
    │   ├── UnsafeModelError         a pickle-based artifact without a verified signed manifest
    │   └── EngineBuildError         TensorRT could not build or deserialize an engine
    └── InferenceRequestError(status)  a KServe v2 request the server refuses (400 / 404 / 503)
"""

from __future__ import annotations

from jetfleet.errors import PermanentError


class ModelLoadError(PermanentError):
    """The model directory's content cannot be loaded; nothing is served."""


class MissingFrameworkError(ModelLoadError):
    """The framework library needed for this format is not installed."""

    def __init__(self, framework: str, module: str, extra: str) -> None:
        super().__init__(f"{framework} models need the Python module '{module}', which is not installed "
                         f"(install the {extra} extra: pip install '.[{extra}]' in the jetfleet checkout, or use an "
                         "image that has it)")
        self.module = module


class IntegrityError(ModelLoadError):
    """The artifact on disk is not the one the metadata describes."""


class UnsafeModelError(ModelLoadError):
    """Refused to load an artifact whose format runs code while loading."""


class EngineBuildError(ModelLoadError):
    """TensorRT failed to build an engine from ONNX, or to deserialize one."""


class InferenceRequestError(PermanentError):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

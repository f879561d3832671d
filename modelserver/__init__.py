"""The per-model inference server (``jetfleet serve-model``) and the model directory contract.

Light to import: frameworks, FastAPI and uvicorn are imported only where a model is served.
"""

from jetfleet.modelfiles.layout import ModelMetadata, make_metadata, read_metadata, version_dir, write_metadata
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec
from jetfleet.modelserver.introspect import read_signature

__all__ = ["ModelMetadata", "ModelSignature", "TensorSpec", "make_metadata", "read_metadata", "read_signature",
           "version_dir", "write_metadata"]

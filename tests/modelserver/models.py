"""Small real models made in the tests, installed into a version directory like the agent does."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.bench.testmodels import dense_reference, write_dense_onnx
from jetfleet.modelfiles.layout import Framework, engine_cache_dir, make_metadata, version_dir, write_metadata
from jetfleet.modelfiles.tensors import ModelSignature

FEATURES, OUTPUTS = 4, 3


def install(models_dir: Path, name: str, version: str, artifact_name: str, *, write: Callable[[Path], object],
            manifest_verified: bool = True, framework: Framework | None = None,
            signature: ModelSignature | None = None) -> Path:
    """Create ``models_dir/name/version`` with the artifact (``write(path)`` makes it) and model.json."""
    directory = version_dir(models_dir, name, version)
    directory.mkdir(parents=True)
    artifact = directory / artifact_name
    write(artifact)
    write_metadata(directory, make_metadata(artifact, name=name, version=version, framework=framework,
                                            manifest_verified=manifest_verified, signature=signature))
    engine_cache_dir(directory).mkdir()
    return directory


def dense_onnx(models_dir: Path, name: str = "dense", version: str = "1", scale: float = 1.0) -> Path:
    return install(models_dir, name, version, "model.onnx",
                   write=lambda path: write_dense_onnx(path, FEATURES, OUTPUTS, seed=0, scale=scale))


def dense_expected(x: np.ndarray[Any, Any], scale: float = 1.0) -> np.ndarray[Any, Any]:
    return dense_reference(FEATURES, OUTPUTS, 0, scale, x)


def world_readable(directory: Path, engines_owner: int | None = None) -> None:
    """What the agent does for a model container: dirs 0755, files 0644, engines/ owned by the server uid."""
    for root, _, files in os.walk(directory):
        os.chmod(root, 0o755)
        for item in files:
            os.chmod(Path(root) / item, 0o644)
    if engines_owner is not None:
        os.chown(engine_cache_dir(directory), engines_owner, engines_owner)

"""The model directory contract between the agent (writer) and the model server (reader).

The agent installs every model version as its own directory; the server reads exactly one::

    <models_dir>/
      <NAME>/
        <VERSION>/                 positive integer, like Triton's model repository
          model.json               ModelMetadata below (written by the agent, read by the server)
          <artifact>               model.onnx | model.engine | model.pt | model.keras | model.pkl | saved_model/ ...
          engines/                 TensorRT engine cache (the only place the server writes)
        current -> <VERSION>       the agent's pointer; the server never reads it

Rules:

* The version directory is complete before it appears (the agent downloads, verifies, writes
  ``model.json``, fsyncs, then renames it into place) and is mounted read-only into the model
  container at :data:`CONTAINER_MODEL_DIR`; ``engines/`` is mounted over it read-write. The agent
  creates ``engines/`` owned by :data:`MODEL_SERVER_UID`.
* ``sha256`` is the artifact's digest (for a directory artifact such as a SavedModel: the digest of
  its sorted ``path NUL file-sha256`` lines, see :func:`artifact_sha256`). The server re-checks it
  before loading and refuses a mismatch.
* Pickle-based artifacts (``.pkl``, ``.pickle``, ``.joblib``: scikit-learn) run code while loading.
  They are loaded only when ``manifest_verified`` is true (the agent verified the signed manifest
  that named this sha256) and the sha256 matches.
* ``inputs``/``outputs`` are the signature when known (the registry reads it at push time where the
  format allows). Formats that do not record it (TorchScript inputs) need it here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jetfleet.files import sha256_file, write_atomic
from jetfleet.modelfiles.errors import IntegrityError, ModelLoadError, UnsafeModelError
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec

METADATA_FILENAME = "model.json"
ENGINE_CACHE_DIRNAME = "engines"
CONTAINER_MODEL_DIR = "/model"
MODEL_SERVER_UID = 10001
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VERSION_PATTERN = r"^[1-9][0-9]{0,17}$"

Framework = Literal["onnx", "tensorrt", "pytorch", "tensorflow", "sklearn"]
FRAMEWORKS: tuple[Framework, ...] = ("onnx", "tensorrt", "pytorch", "tensorflow", "sklearn")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SUFFIX_FRAMEWORK: dict[str, Framework] = {
    ".onnx": "onnx", ".engine": "tensorrt", ".plan": "tensorrt", ".pt": "pytorch", ".pth": "pytorch",
    ".keras": "tensorflow", ".h5": "tensorflow", ".hdf5": "tensorflow",
    **{suffix: "sklearn" for suffix in PICKLE_SUFFIXES},
}
# Which artifact suffixes each framework can serve ("" = a SavedModel directory).
FRAMEWORK_SUFFIXES: dict[Framework, tuple[str, ...]] = {
    "onnx": (".onnx",),
    "tensorrt": (".engine", ".plan", ".onnx"),
    "pytorch": (".pt", ".pth"),
    "tensorflow": (".keras", ".h5", ".hdf5", ""),
    "sklearn": PICKLE_SUFFIXES,
}
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ModelMetadata(BaseModel):
    """``model.json``: what the agent installed and what the server may assume about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=VERSION_PATTERN)]
    framework: Framework
    artifact: Annotated[str, Field(pattern=r"^[^/\\]+$", description="file or directory name inside the version dir")]
    sha256: Sha256
    size_bytes: Annotated[int, Field(ge=0)] | None = None
    manifest_verified: bool = False
    inputs: tuple[TensorSpec, ...] | None = None
    outputs: tuple[TensorSpec, ...] | None = None

    def declared_signature(self) -> ModelSignature | None:
        """The signature this file gives (outputs may be empty), or None when it lists no inputs."""
        if self.inputs is None:
            return None
        return ModelSignature(inputs=self.inputs, outputs=self.outputs or ())


def version_dir(models_dir: Path, name: str, version: str) -> Path:
    return models_dir / name / version


def engine_cache_dir(model_dir: Path) -> Path:
    return model_dir / ENGINE_CACHE_DIRNAME


def read_metadata(model_dir: Path) -> ModelMetadata:
    """Parse ``model_dir/model.json``; a bad file raises ``ModelLoadError`` naming the file and key."""
    path = model_dir / METADATA_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: metadata file not found (every model version dir needs one)") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return ModelMetadata.model_validate_json(text)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ModelLoadError(f"{path}: key '{key}': {error['msg']}") from exc


def write_metadata(model_dir: Path, metadata: ModelMetadata) -> Path:
    """Write ``model.json`` atomically (temp file, fsync, rename)."""
    path = model_dir / METADATA_FILENAME
    write_atomic(path, metadata.model_dump_json(indent=2, exclude_none=True), mode=0o644)  # read by the container
    return path


def detect_framework(artifact: Path) -> Framework | None:
    """The framework a file name (or a SavedModel directory) implies, or None."""
    if artifact.is_dir():
        return "tensorflow" if (artifact / "saved_model.pb").is_file() else None
    return _SUFFIX_FRAMEWORK.get(artifact.suffix.lower())


def is_pickle_based(artifact_name: str) -> bool:
    return artifact_name.lower().endswith(PICKLE_SUFFIXES)


def artifact_sha256(path: Path) -> str:
    """sha256 of a file, or the tree digest of a directory (sorted ``relpath NUL sha256`` lines)."""
    if path.is_symlink():
        raise IntegrityError(f"{path}: artifact must not be a symlink")
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise IntegrityError(f"{path}: artifact not found")
    tree = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        if item.is_symlink():
            raise IntegrityError(f"{item}: symlinks are not allowed inside a directory artifact")
        if item.is_file():
            tree.update(f"{item.relative_to(path).as_posix()}\0{sha256_file(item)}\n".encode())
    return tree.hexdigest()



def verified_artifact(model_dir: Path, metadata: ModelMetadata) -> Path:
    """The artifact's path after checking its sha256 and the pickle rule; raises otherwise."""
    path = model_dir / metadata.artifact
    actual = artifact_sha256(path)
    if actual != metadata.sha256:
        raise IntegrityError(f"{path}: sha256 is {actual} but {METADATA_FILENAME} says {metadata.sha256}; "
                             "the artifact is corrupt or was replaced")
    if is_pickle_based(metadata.artifact) and not metadata.manifest_verified:
        raise UnsafeModelError(f"{path}: refusing to load a pickle-based artifact because "
                               f"{METADATA_FILENAME} has manifest_verified=false; pickle runs code while loading, "
                               "so it is loaded only from a verified signed manifest")
    suffixes = FRAMEWORK_SUFFIXES[metadata.framework]
    suffix = "" if path.is_dir() else path.suffix.lower()
    if suffix not in suffixes:
        wanted = ", ".join(s or "a SavedModel directory" for s in suffixes)
        raise ModelLoadError(f"{path}: framework '{metadata.framework}' serves {wanted}, not this artifact")
    return path


def make_metadata(artifact: Path, *, name: str, version: str, manifest_verified: bool,
                  framework: Framework | None = None, signature: ModelSignature | None = None) -> ModelMetadata:
    """Metadata for an artifact already placed in its version dir (used by the agent and tests)."""
    framework = framework or detect_framework(artifact)
    if framework is None:
        raise ModelLoadError(f"{artifact}: cannot tell the framework from the name; "
                             f"pass one of {', '.join(FRAMEWORKS)}")
    size = artifact.stat().st_size if artifact.is_file() else None
    return ModelMetadata(
        name=name, version=version, framework=framework, artifact=artifact.name, sha256=artifact_sha256(artifact),
        size_bytes=size, manifest_verified=manifest_verified,
        inputs=signature.inputs if signature else None, outputs=signature.outputs if signature else None,
    )

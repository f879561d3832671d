"""Checking a pushed model before it becomes a version: framework, file name, signature, golden pair.

Everything here raises :class:`~jetfleet.backend.artifacts.InvalidField` (a 400 naming the field) for bad input;
the API then discards the uploads, so a refused push leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from jetfleet.backend.artifacts import ArtifactStore, InvalidField
from jetfleet.backend.model_schemas import CreateVersion
from jetfleet.errors import PermanentError
from jetfleet.golden import GOLDEN_SUFFIXES, GoldenError, bind, load_tensors
from jetfleet.manifest import FRAMEWORKS, BlobRef, Framework, GoldenCheck

MAX_GOLDEN_BYTES = 64 << 20
MAX_REFERENCE_BYTES = 1 << 30


def artifact_suffix(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if not name or name.startswith("."):
        raise InvalidField("filename", f"{filename!r} is not a file name")
    return Path(name).suffix.lower()


def resolve_framework(filename: str, framework: Framework | None) -> tuple[Framework, str]:
    """The framework and the stored file name (``model<suffix>``); refuses a name the framework cannot serve."""
    from jetfleet.modelfiles.layout import FRAMEWORK_SUFFIXES, detect_framework

    suffix = artifact_suffix(filename)
    if framework is None:
        detected = detect_framework(Path(filename)) if suffix else None
        if detected is None:
            raise InvalidField("framework", f"cannot tell the framework of {filename!r} from its extension; "
                                            f"pass --framework ({'|'.join(FRAMEWORKS)})")
        framework = detected
    allowed = FRAMEWORK_SUFFIXES[framework]
    if suffix not in allowed:
        wanted = ", ".join(s for s in allowed if s) or "a SavedModel directory"
        raise InvalidField("filename", f"a {framework} model must be a {wanted} file, not {filename!r}")
    return framework, f"model{suffix}"


def read_signature(upload_path: Path, stored_name: str, framework: Framework) -> dict[str, Any] | None:
    """The model's input/output signature where the format records it (see jetfleet.modelserver.introspect)."""
    from jetfleet.modelserver.introspect import read_signature as read_model_signature

    with tempfile.TemporaryDirectory(dir=upload_path.parent) as scratch:
        named = Path(scratch) / stored_name  # loaders go by the extension
        os.link(upload_path, named)
        try:
            signature = read_model_signature(named, framework)
        except PermanentError as exc:
            message = str(exc).replace(str(named), "the artifact")
            raise InvalidField("artifact", f"not a loadable {framework} model: {message}") from exc
    return None if signature is None else signature.model_dump(mode="json")


def golden_check(store: ArtifactStore, request: CreateVersion, signature: dict[str, Any] | None) -> GoldenCheck | None:
    if request.golden_input_upload is None and request.golden_output_upload is None:
        return None
    if request.golden_input_upload is None or request.golden_output_upload is None:
        missing = "golden_input" if request.golden_input_upload is None else "golden_output"
        raise InvalidField(missing, "a golden check needs both --golden-input and --golden-output")
    names = {kind: [spec["name"] for spec in signature[f"{kind}s"]] if signature else None
             for kind in ("input", "output")}
    refs = {}
    for kind, upload_id, filename in (("input", request.golden_input_upload, request.golden_input_filename),
                                      ("output", request.golden_output_upload, request.golden_output_filename)):
        field = f"golden_{kind}"
        upload, path = store.upload(upload_id, f"{field}_upload")
        stored = _golden_name(filename, field)
        if upload.size_bytes > MAX_GOLDEN_BYTES:
            raise InvalidField(field, f"{upload.size_bytes} bytes is over the {MAX_GOLDEN_BYTES} byte limit")
        try:
            bind(load_tensors(path.read_bytes(), stored), names[kind] or None, kind)
        except GoldenError as exc:
            raise InvalidField(field, str(exc)) from exc
        refs[kind] = BlobRef(sha256=upload.sha256, size_bytes=upload.size_bytes,
                             filename=f"{kind}{Path(stored).suffix.lower()}")
    return GoldenCheck(input=refs["input"], output=refs["output"], rtol=request.golden_rtol, atol=request.golden_atol)


def _golden_name(filename: str | None, field: str) -> str:
    name = Path(filename or "golden.npy").name
    if Path(name).suffix.lower() not in GOLDEN_SUFFIXES:
        raise InvalidField(field, f"{name!r}: golden files are numpy .npy or .npz files")
    return name



def reference_arrays(store: ArtifactStore, request: CreateVersion, signature: dict[str, Any] | None) -> dict[str, Any]:
    """The drift reference's arrays by input name (rows = samples, last dimension = features), checked against
    the model's inputs where the format records them."""
    if request.reference_upload is None:
        return {}
    upload, path = store.upload(request.reference_upload, "reference_upload")
    name = Path(request.reference_filename or "reference.npz").name
    if upload.size_bytes > MAX_REFERENCE_BYTES:
        raise InvalidField("reference", f"{upload.size_bytes} bytes is over the {MAX_REFERENCE_BYTES} byte limit")
    if not name.lower().endswith((".npz", ".npy")):
        raise InvalidField("reference", f"{name!r}: a reference is a numpy .npz file (one array per input name)")
    try:
        arrays = bind(load_tensors(path.read_bytes(), name),
                      [spec["name"] for spec in signature["inputs"]] if signature else None, "input")
    except GoldenError as exc:
        raise InvalidField("reference", str(exc)) from exc
    arrays = {tensor or "input": array for tensor, array in arrays.items()}  # a .npy for an unknown signature
    specs = {spec["name"]: spec for spec in signature["inputs"]} if signature else {}
    for tensor, array in arrays.items():
        if array.dtype.kind not in "biuf" or array.size == 0:
            raise InvalidField("reference", f"array {tensor!r}: needs numeric rows, got {array.dtype} "
                                            f"{list(array.shape)}")
        width = specs.get(tensor, {}).get("shape", [])[-1:] or [-1]
        if array.ndim >= 2 and width[0] > 0 and array.shape[-1] != width[0]:
            raise InvalidField("reference", f"array {tensor!r} has {array.shape[-1]} features per row, the "
                                            f"model's input has {width[0]}")
    return arrays

"""The model directory contract: metadata, digests, and what the server refuses to load."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from jetfleet.modelfiles.errors import IntegrityError, ModelLoadError, UnsafeModelError
from jetfleet.modelfiles.layout import (
    METADATA_FILENAME,
    artifact_sha256,
    detect_framework,
    make_metadata,
    read_metadata,
    verified_artifact,
    write_metadata,
)
from jetfleet.modelfiles.tensors import ModelSignature, TensorSpec


def _artifact(directory: Path, name: str, content: bytes = b"weights") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


def test_metadata_round_trips_through_model_json(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, "model.onnx")
    signature = ModelSignature(inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 4)),),
                               outputs=(TensorSpec(name="y", datatype="INT64", shape=(-1,)),))
    written = make_metadata(artifact, name="det", version="12", manifest_verified=True, signature=signature)
    write_metadata(tmp_path, written)
    assert read_metadata(tmp_path) == written
    assert written.framework == "onnx" and written.size_bytes == len(b"weights")
    assert written.declared_signature() == signature
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(("change", "key"), [
    ({"version": "01"}, "version"), ({"framework": "caffe"}, "framework"), ({"sha256": "abc"}, "sha256"),
    ({"artifact": "../etc/passwd"}, "artifact"), ({"surprise": 1}, "surprise"),
])
def test_bad_metadata_names_the_file_and_key(tmp_path: Path, change: dict[str, object], key: str) -> None:
    good = make_metadata(_artifact(tmp_path, "m.onnx"), name="m", version="1", manifest_verified=False)
    (tmp_path / METADATA_FILENAME).write_text(json.dumps({**good.model_dump(mode="json"), **change}))
    with pytest.raises(ModelLoadError, match=rf"{METADATA_FILENAME}: key '{key}'"):
        read_metadata(tmp_path)


def test_missing_metadata_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="metadata file not found"):
        read_metadata(tmp_path)


def test_directory_digest_covers_names_and_contents(tmp_path: Path) -> None:
    saved = tmp_path / "saved_model"
    _artifact(saved, "saved_model.pb", b"graph")
    _artifact(saved / "variables", "variables.index", b"index")
    first = artifact_sha256(saved)
    assert first == artifact_sha256(saved)
    (saved / "variables" / "variables.index").write_bytes(b"other")
    assert artifact_sha256(saved) != first
    (saved / "variables" / "variables.index").write_bytes(b"index")
    (saved / "variables" / "variables.index").rename(saved / "variables" / "renamed.index")
    assert artifact_sha256(saved) != first
    (saved / "link").symlink_to("/etc/passwd")
    with pytest.raises(IntegrityError, match="symlinks are not allowed"):
        artifact_sha256(saved)


def test_a_replaced_artifact_is_refused_with_both_digests(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, "model.onnx")
    metadata = make_metadata(artifact, name="m", version="1", manifest_verified=True)
    artifact.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match=f"{artifact_sha256(artifact)} but model.json says {metadata.sha256}"):
        verified_artifact(tmp_path, metadata)


def test_pickle_needs_a_verified_manifest(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, "model.pkl", pickle.dumps({"weights": [1, 2]}))
    unverified = make_metadata(artifact, name="m", version="1", manifest_verified=False)
    with pytest.raises(UnsafeModelError, match="manifest_verified=false; pickle runs code"):
        verified_artifact(tmp_path, unverified)
    verified = make_metadata(artifact, name="m", version="1", manifest_verified=True)
    assert verified_artifact(tmp_path, verified) == artifact


def test_pickle_with_a_verified_manifest_but_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, "model.joblib", b"original")
    metadata = make_metadata(artifact, name="m", version="1", manifest_verified=True)
    artifact.write_bytes(b"swapped")
    with pytest.raises(IntegrityError):
        verified_artifact(tmp_path, metadata)


def test_framework_and_artifact_must_agree(tmp_path: Path) -> None:
    artifact = _artifact(tmp_path, "model.onnx")
    metadata = make_metadata(artifact, name="m", version="1", manifest_verified=True, framework="pytorch")
    with pytest.raises(ModelLoadError, match=r"framework 'pytorch' serves \.pt, \.pth, not this artifact"):
        verified_artifact(tmp_path, metadata)


@pytest.mark.parametrize(("name", "framework"), [
    ("a.onnx", "onnx"), ("a.engine", "tensorrt"), ("a.PLAN", "tensorrt"), ("a.pt", "pytorch"), ("a.pth", "pytorch"),
    ("a.keras", "tensorflow"), ("a.h5", "tensorflow"), ("a.pkl", "sklearn"), ("a.pickle", "sklearn"),
    ("a.joblib", "sklearn"), ("a.bin", None),
])
def test_framework_is_detected_from_the_name(tmp_path: Path, name: str, framework: str | None) -> None:
    assert detect_framework(_artifact(tmp_path, name)) == framework


def test_a_saved_model_directory_is_tensorflow(tmp_path: Path) -> None:
    _artifact(tmp_path / "export", "saved_model.pb")
    assert detect_framework(tmp_path / "export") == "tensorflow"
    assert detect_framework(tmp_path) is None

"""Helpers for model-registry tests: small real models, pushes through the real admin client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from jetfleet.backend.admin_client import AdminClient
from jetfleet.backend.model_schemas import CreateVersion, VersionRecord
from tests.support.backend import BackendProcess

HARDWARE = {"platform": "x86_64", "arch": "x86_64"}


def dense_model(path: Path, seed: int = 0, scale: float = 1.0, features: int = 4, outputs: int = 3,
                **misbehaviour: Any) -> Path:
    """The dense test model; ``slow_size``/``fail_above`` make a version that is slow or fails in the field."""
    from jetfleet.bench.testmodels import write_dense_onnx

    return write_dense_onnx(path, features=features, outputs=outputs, seed=seed, scale=scale, **misbehaviour)


def golden_pair(directory: Path, seed: int = 0, scale: float = 1.0, features: int = 4, outputs: int = 3,
                wrong: bool = False) -> tuple[Path, Path]:
    """A golden input and the output the dense model (seed, scale) gives for it (or a wrong one)."""
    from jetfleet.bench.testmodels import dense_reference

    x = np.linspace(-1, 1, 2 * features, dtype=np.float32).reshape(2, features)
    y = dense_reference(features, outputs, seed, scale, x).astype(np.float32)
    if wrong:
        y = y + 1.0
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "golden_in.npy", x)
    np.save(directory / "golden_out.npy", y)
    return directory / "golden_in.npy", directory / "golden_out.npy"


def push(backend: BackendProcess, name: str, artifact: Path, *, tag: str | None = None,
         golden: tuple[Path, Path] | None = None, **fields: Any) -> VersionRecord:
    with AdminClient(backend.url, backend.admin_token) as client:
        upload = client.upload(artifact)
        golden_ids = [client.upload(path).upload_id for path in golden] if golden else [None, None]
        request = CreateVersion(artifact_upload=upload.upload_id, filename=fields.pop("filename", artifact.name),
                                tag=tag, golden_input_upload=golden_ids[0], golden_output_upload=golden_ids[1],
                                golden_input_filename=golden[0].name if golden else None,
                                golden_output_filename=golden[1].name if golden else None, **fields)
        return client.create_version(name, request)


def register(backend: BackendProcess, device_id: str) -> tuple[str, str]:
    """Register a device; returns (its token, the manifest public key)."""
    response = httpx.post(f"{backend.url}/api/v1/edge-devices/register", timeout=10,
                          json={"device_id": device_id, "device_name": device_id, "hardware": HARDWARE})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["device_token"], body["manifest_public_key"]


def heartbeat(backend: BackendProcess, device_id: str, token: str, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{backend.url}/api/v1/edge-devices/{device_id}/heartbeat", json=body, timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def data_files(backend: BackendProcess) -> dict[str, set[str]]:
    root = backend.workdir / "jetfleet-data"
    return {kind: {p.name for p in (root / kind).rglob("*") if p.is_file()} for kind in ("artifacts", "uploads")}

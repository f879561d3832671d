"""Helpers for jobs/results/drift tests: results and sketches built as a device builds them, posted over HTTP."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jetfleet.manifest import ManifestPayload
from tests.support.backend import BackendProcess

KLL_K = 200


def result(device_id: str, job: str, run_id: str, input_name: str, *, model: str = "dense", version: int = 1,
           outputs: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    sha = hashlib.sha256(f"{job}/{input_name}".encode()).hexdigest()
    body: dict[str, Any] = {"key": f"{device_id}.{job}.{run_id}.{sha[:16]}", "job": job, "run_id": run_id,
                            "input": input_name, "input_sha256": sha, "model": model, "version": version,
                            "created_at": datetime.now(timezone.utc).isoformat()}
    if error is None:
        body["outputs"] = outputs if outputs is not None else {"output": [[0.5, 0.25, 0.25]]}
    else:
        body["error"] = error
    return body


def kll_b64(values: Iterable[float]) -> str:
    from datasketches import kll_floats_sketch

    sketch = kll_floats_sketch(KLL_K)
    for value in values:
        sketch.update(float(value))
    return base64.b64encode(sketch.serialize()).decode()


def sketches(device_id: str, job: str, run_id: str, model: str, version: int, rows: np.ndarray, *,
             tensor: str = "input", start: datetime | None = None) -> list[dict[str, Any]]:
    """One input window: a KLL sketch per feature (column) of ``rows``, as the agent ships them."""
    begin = start or datetime.now(timezone.utc)
    return [{"key": f"{device_id}.{job}.{run_id}.input.{tensor}.{index}", "model": model, "version": version,
             "kind": "input", "tensor": tensor, "index": index, "count": int(rows.shape[0]),
             "kll_b64": kll_b64(rows[:, index]), "window_start": begin.isoformat(),
             "window_end": (begin + timedelta(seconds=60)).isoformat()}
            for index in range(rows.shape[1])]


def run_id() -> str:
    return uuid.uuid4().hex


def post_batch(backend: BackendProcess, device_id: str, token: str, batch: dict[str, Any], *,
               compress: bool = True, raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(batch).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if compress and raw is None:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(f"{backend.url}/api/v1/edge-devices/{device_id}/results", content=body, headers=headers,
                      timeout=30)


def manifest(answer: dict[str, Any], public_b64: str) -> ManifestPayload:
    signed = answer["manifest"]
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    public.verify(base64.b64decode(signed["signature"]), signed["payload"].encode())  # raises when tampered
    return ManifestPayload.model_validate_json(signed["payload"])

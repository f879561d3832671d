"""The job runner's client of the node's model endpoint (KServe v2 JSON); httpx errors translated here.

``ModelUnavailable`` (temporary: no answer, 404 while a route changes, 502/503/504) makes the runner wait
for the model; ``InferenceRefused`` (the server rejected this input: 4xx, 500) becomes an error result.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError

from jetfleet.agent.jobs.inputs import Array, request_body
from jetfleet.errors import PermanentError, TemporaryError
from jetfleet.manifest import TensorSpecEntry
from jetfleet.modelfiles.dtypes import to_numpy

INFER_TIMEOUT = 120.0
UNAVAILABLE = (404, 502, 503, 504)


class ModelUnavailable(TemporaryError):
    """The model does not answer on the node endpoint right now."""


class InferenceRefused(PermanentError):
    """The model server refused this input."""


async def infer(http: httpx.AsyncClient, base_url: str, model: str,
                tensors: dict[str, Array]) -> tuple[int, dict[str, Array]]:
    """(serving version, outputs) for one request."""
    url = f"{base_url}/v2/models/{model}/infer"
    try:
        response = await http.post(url, json=request_body(tensors), timeout=INFER_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ModelUnavailable(f"{url}: {exc or type(exc).__name__}") from exc
    if response.status_code in UNAVAILABLE:
        raise ModelUnavailable(f"{url} answered {response.status_code}")
    if response.status_code != 200:
        raise InferenceRefused(f"the model server answered {response.status_code}: {_detail(response)}")
    try:
        body = response.json()
        outputs = {str(o["name"]): _array(o) for o in body["outputs"]}
        return int(body["model_version"]), outputs
    except (ValueError, KeyError, TypeError) as exc:
        raise InferenceRefused(f"unreadable answer from the model server: {exc}") from exc


async def model_inputs(http: httpx.AsyncClient, base_url: str, model: str,
                       version: int) -> tuple[TensorSpecEntry, ...] | None:
    """The inputs the serving version declares (KServe v2 model metadata), or None when it does not say."""
    try:
        response = await http.get(f"{base_url}/v2/models/{model}/versions/{version}", timeout=10.0)
        if response.status_code != 200:
            return None
        return tuple(TensorSpecEntry.model_validate(t) for t in response.json()["inputs"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, ValidationError):
        return None


def _array(entry: dict[str, Any]) -> Array:
    datatype = str(entry["datatype"])
    data = entry["data"]
    array = np.array(data, dtype=object) if datatype == "BYTES" else np.asarray(data, dtype=to_numpy(datatype))
    return array.reshape([int(d) for d in entry["shape"]])


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("error") or body.get("detail") or body)[:500] if isinstance(body, dict) else str(body)
    except ValueError:
        return response.text[:500]

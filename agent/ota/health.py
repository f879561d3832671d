"""The health gate of a candidate: KServe v2 readiness of the exact version, then the golden check."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from jetfleet.agent.ota.failures import StepFailure
from jetfleet.agent.ota.states import GOLDEN_MISMATCH, READY_TIMEOUT
from jetfleet.golden import GoldenError, bind, compare, infer_request, load_tensors

POLL_SECONDS = (0.05, 0.1, 0.2, 0.5)


async def wait_ready(http: httpx.AsyncClient, base_url: str, name: str, version: int, timeout: float,
                     alive: Callable[[], Awaitable[bool]], exited_reason: str = "HEALTH_ERROR/EXITED") -> None:
    """Until ``/v2/models/NAME/versions/V/ready`` answers 200; fails early when the server process ends."""
    url = f"{base_url}/v2/models/{name}/versions/{version}/ready"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    attempt = 0
    while True:
        try:
            if (await http.get(url, timeout=2.0)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not await alive():
            raise StepFailure(exited_reason, f"the model server for {name} version {version} exited while loading")
        if loop.time() > deadline:
            raise StepFailure(READY_TIMEOUT, f"{name} version {version} not ready after {timeout:g}s")
        await asyncio.sleep(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)])
        attempt += 1


async def golden_check(http: httpx.AsyncClient, base_url: str, name: str, version: int,
                       golden: tuple[Path, Path, float, float]) -> None:
    """Send the golden input; the answer must match the golden output within (rtol, atol).

    Tensor names come from the server's own model metadata (what it really serves).
    """
    input_path, output_path, rtol, atol = golden
    url = f"{base_url}/v2/models/{name}/versions/{version}"
    try:
        metadata = (await http.get(url, timeout=10.0)).json()
        names = ([t["name"] for t in metadata["inputs"]], [t["name"] for t in metadata["outputs"]])
        inputs = bind(load_tensors(input_path.read_bytes(), input_path.name), names[0], "input")
        expected = bind(load_tensors(output_path.read_bytes(), output_path.name), names[1], "output")
        response = await http.post(f"{url}/infer", json=infer_request(inputs), timeout=60.0)
    except (GoldenError, OSError, KeyError, TypeError, ValueError) as exc:
        raise StepFailure("HEALTH_ERROR/GOLDEN_UNUSABLE", f"{name} version {version}: {exc}") from exc
    except httpx.HTTPError as exc:
        raise StepFailure("HEALTH_ERROR/GOLDEN_REQUEST", f"{url}: {exc or type(exc).__name__}") from exc
    if response.status_code != 200:
        raise StepFailure("HEALTH_ERROR/GOLDEN_REQUEST", f"{url} answered {response.status_code}: "
                                                         f"{response.text[:300]}")
    mismatch = compare(expected, response.json(), rtol, atol)
    if mismatch is not None:
        raise StepFailure(GOLDEN_MISMATCH, f"{name} version {version}: {mismatch}")

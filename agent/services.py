"""The node's own services (e.g. the voice server), health-probed for each heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx

from jetfleet.protocol import ServiceEndpoint

PROBE_TIMEOUT_SECONDS = 1.0


async def probe_services(services: Sequence[ServiceEndpoint], client: httpx.AsyncClient) -> list[ServiceEndpoint]:
    """Each configured service with ``healthy`` set from ``GET <url>/health`` (200 = healthy)."""
    return list(await asyncio.gather(*(_probe(service, client) for service in services)))


async def _probe(service: ServiceEndpoint, client: httpx.AsyncClient) -> ServiceEndpoint:
    try:
        response = await client.get(service.url.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_SECONDS)
        healthy = response.status_code == 200
    except httpx.HTTPError:
        healthy = False
    return service.model_copy(update={"healthy": healthy})

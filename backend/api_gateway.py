"""Traefik's HTTP provider endpoint (/api/v1/gateway/traefik): the gateway's routes from the live registry.

Traefik polls it every second or so, so an answer is one indexed query over the online devices plus a
render, and is reused for a fraction of a second when several gateways poll at once. The answer is
validated like a rendered fleet file; it always carries the voice and vision routes (with no server
while no such node is online: 503, not 404), so Traefik never receives an empty config, which would
remove every route. On any failure the endpoint answers 5xx and Traefik keeps its last good config.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend import appstate
from jetfleet.backend.auth import require_read
from jetfleet.backend.models import Device
from jetfleet.gateway.fleet import parse_dynamic_settings
from jetfleet.gateway.live_fleet import DeviceView, fleet_from_devices
from jetfleet.gateway.render import REGISTRY_ROLES, render_dynamic

log = logging.getLogger("jetfleet.backend.gateway")
router = APIRouter(prefix="/api/v1/gateway", tags=["gateway"])
CACHE_SECONDS = 0.25


class RenderedCache:
    """The last answer per query string, reused for ``CACHE_SECONDS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, bytes]] = {}

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: str, body: bytes) -> bool:
        """Store ``body``; True when it differs from the previous answer for ``key``."""
        with self._lock:
            previous = self._entries.get(key)
            self._entries[key] = (time.monotonic() + CACHE_SECONDS, body)
        return previous is None or previous[1] != body


@router.get("/traefik", dependencies=[Depends(require_read)],
            responses={200: {"description": "Traefik dynamic configuration (HTTP provider format, JSON)"},
                       400: {"description": "Unknown or invalid setting in the query string"}})
def traefik_config(request: Request) -> Response:
    """Routers and services for every online device's healthy voice/vision service and serving models.

    Query parameters override the gateway's routing settings (strategy, health_interval, retry_in_flight, ...).
    """
    settings = parse_dynamic_settings(dict(request.query_params), source="query string")
    cache = _cache(request)
    key = str(request.url.query)
    body = cache.get(key)
    if body is None:
        devices = _online_devices(appstate.sessions(request), appstate.now())
        live = fleet_from_devices(devices, settings)
        config = render_dynamic(live.fleet, always=REGISTRY_ROLES)
        body = json.dumps(config.dump(), sort_keys=True).encode()  # stable bytes: Traefik reloads on change only
        if cache.put(key, body):  # log once per change, not on every poll
            for reason in live.skipped:
                log.warning("gateway config: %s", reason)
    return Response(body, media_type="application/json")


def _cache(request: Request) -> RenderedCache:
    state = request.app.state
    if getattr(state, "gateway_cache", None) is None:
        state.gateway_cache = RenderedCache()
    cache: RenderedCache = state.gateway_cache
    return cache


def _online_devices(sessions: sessionmaker[Session], now: datetime) -> list[DeviceView]:
    query = select(Device.device_id, Device.services, Device.models).where(Device.offline_after >= now)
    with sessions() as session:
        return [DeviceView(device_id, list(services or []), list(models or []))
                for device_id, services, models in session.execute(query)]

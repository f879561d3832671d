"""Prometheus HTTP service discovery fed from the fleet registry (``http_sd_configs``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from jetfleet.backend import appstate
from jetfleet.backend.auth import require_read
from jetfleet.backend.models import Device

router = APIRouter(prefix="/api/v1/prometheus", tags=["monitoring"])

# Reported service roles that serve Prometheus metrics at <url>/metrics.
SCRAPED_ROLES = ("metrics", "voice")


@router.get("/targets", dependencies=[Depends(require_read)])
def scrape_targets(request: Request) -> list[dict[str, Any]]:
    """Every device's exporter and services, with device labels, in Prometheus' http_sd format.

    Offline devices stay listed (their scrapes fail: ``up == 0`` is what alerts should watch).
    """
    request.app.state.ingest.flush()
    with appstate.sessions(request)() as session:
        devices = list(session.scalars(select(Device).order_by(Device.device_id)))
        return [group for device in devices for group in _groups(device)]


def _groups(device: Device) -> list[dict[str, Any]]:
    groups = []
    for service in device.services if isinstance(device.services, list) else []:
        if service.get("role") not in SCRAPED_ROLES:
            continue
        url = urlsplit(service["url"])
        labels = {"__scheme__": url.scheme, "__metrics_path__": url.path.rstrip("/") + "/metrics",
                  "jetfleet_role": service["role"], "device_id": device.device_id,
                  "device_name": device.device_name, "location": device.location}
        groups.append({"targets": [url.netloc], "labels": labels})
    return groups

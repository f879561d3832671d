"""What the control plane wants a device to run, as answered to each heartbeat (with its ETag)."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from backend.devices import device_config
from backend.models import Device
from backend.settings import BackendSettings
from jetfleet.protocol import HeartbeatResponse


def heartbeat_response(session: Session, device: Device, settings: BackendSettings) -> HeartbeatResponse:
    return HeartbeatResponse(ota=[], config=device_config(device, settings))


def response_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

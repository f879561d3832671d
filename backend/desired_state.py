"""What the control plane wants a device to run, answered to each heartbeat (with its ETag)."""

from __future__ import annotations

import hashlib

from backend.ingest import DeviceAuth
from backend.settings import BackendSettings
from jetfleet.protocol import DeviceConfig, Heartbeat, HeartbeatResponse


class DesiredState:
    """Builds heartbeat answers without touching the database on the hot path."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    def answer(self, device_id: str, auth: DeviceAuth, beat: Heartbeat) -> HeartbeatResponse:
        config = DeviceConfig(heartbeat_interval=auth.heartbeat_interval,
                              offline_after_missed=self.settings.offline_after_missed)
        return HeartbeatResponse(ota=[], config=config)


def response_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

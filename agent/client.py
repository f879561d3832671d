"""The agent's client of the device API; httpx errors become jetfleet errors here, at the boundary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

import jetfleet
from jetfleet.agent.http import client_for
from jetfleet.httperrors import raise_for_status, translate_transport_errors
from jetfleet.jobs import ResultsAck
from jetfleet.protocol import Heartbeat, HeartbeatResponse, RegisterRequest, RegisterResponse

USER_AGENT = f"jetfleet-agent/{jetfleet.__version__}"


@dataclass(frozen=True)
class HeartbeatResult:
    response: HeartbeatResponse | None  # None: unchanged since ``etag`` (304)
    etag: str | None
    request_bytes: int


class BackendClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None,
                 provisioning_key: str | None = None, ca_bundle: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": USER_AGENT}
        if provisioning_key:
            headers["X-Provisioning-Key"] = provisioning_key
        self._http = client_for([self.base_url], ca_bundle, base_url=self.base_url, timeout=timeout,
                                transport=transport, headers=headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def register(self, request: RegisterRequest, device_token: str | None) -> RegisterResponse:
        headers = {"Authorization": f"Bearer {device_token}"} if device_token else {}
        with translate_transport_errors(self.base_url):
            response = await self._http.post("/api/v1/edge-devices/register",
                                             content=request.model_dump_json(exclude_none=True),
                                             headers={**headers, "Content-Type": "application/json"})
        raise_for_status(response, self.base_url)
        return RegisterResponse.model_validate_json(response.content)

    async def heartbeat(self, device_id: str, device_token: str, beat: Heartbeat,
                        etag: str | None) -> HeartbeatResult:
        body = beat.model_dump_json(exclude_none=True, exclude_defaults=True).encode()
        headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json"}
        if etag:
            headers["If-None-Match"] = etag
        with translate_transport_errors(self.base_url):
            response = await self._http.post(f"/api/v1/edge-devices/{device_id}/heartbeat", content=body,
                                             headers=headers)
        if response.status_code == 304:
            return HeartbeatResult(None, etag, len(body))
        raise_for_status(response, self.base_url)
        return HeartbeatResult(HeartbeatResponse.model_validate_json(response.content),
                               response.headers.get("ETag"), len(body))

    async def post_results(self, device_id: str, device_token: str, gzipped_batch: bytes) -> ResultsAck:
        """Ship one gzip-compressed ResultsBatch; 5xx/connect errors are temporary, 4xx permanent."""
        headers = {"Authorization": f"Bearer {device_token}", "Content-Type": "application/json",
                   "Content-Encoding": "gzip"}
        with translate_transport_errors(self.base_url):
            response = await self._http.post(f"/api/v1/edge-devices/{device_id}/results", content=gzipped_batch,
                                             headers=headers)
        raise_for_status(response, self.base_url)
        return ResultsAck.model_validate_json(response.content)

"""A small client of the control plane's admin API, used by the ``fleet``/``models`` commands."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter

from jetfleet.httperrors import raise_for_status, translate_transport_errors
from jetfleet.protocol import DeviceRecord

_DEVICE_LIST = TypeAdapter(list[DeviceRecord])


class AdminClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"} if token else {})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with translate_transport_errors(self.base_url):
            response = self._http.request(method, path, **kwargs)
        raise_for_status(response, self.base_url, auth_hint=" (give the admin token with --token or JETFLEET_TOKEN)")
        return response

    def devices(self, status: str | None = None) -> list[DeviceRecord]:
        params = {"status": status} if status else None
        return _DEVICE_LIST.validate_json(self.request("GET", "/api/v1/edge-devices", params=params).content)

    def device(self, device_id: str) -> DeviceRecord:
        return DeviceRecord.model_validate_json(self.request("GET", f"/api/v1/edge-devices/{device_id}").content)

    def reprovision(self, device_id: str) -> DeviceRecord:
        response = self.request("POST", f"/api/v1/edge-devices/{device_id}/reprovision")
        return DeviceRecord.model_validate_json(response.content)

    def remove(self, device_id: str) -> None:
        self.request("DELETE", f"/api/v1/edge-devices/{device_id}")

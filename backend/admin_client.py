"""A small client of the control plane's admin API, used by the ``fleet``/``models`` commands."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter

from jetfleet.backend.job_schemas import CreateJob, JobRecord, ResultRecord, RunJob, RunResult
from jetfleet.backend.model_schemas import (
    CreateVersion,
    DeployRequest,
    DeployResult,
    ModelDetail,
    ModelStatusReport,
    ModelSummary,
    MoveTag,
    TagRecord,
    UndeployRequest,
    UploadResult,
    VersionRecord,
)
from jetfleet.httperrors import raise_for_status, tls_verify, translate_transport_errors
from jetfleet.protocol import DeviceRecord

_DEVICE_LIST = TypeAdapter(list[DeviceRecord])
_MODEL_LIST = TypeAdapter(list[ModelSummary])
_DEVICE_IDS = TypeAdapter(list[str])
_JOB_LIST = TypeAdapter(list[JobRecord])
_RESULT_LIST = TypeAdapter(list[ResultRecord])
UPLOAD_CHUNK_BYTES = 1 << 20
Progress = Callable[[int], None]


class AdminClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, ca_bundle: Path | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  verify=tls_verify(ca_bundle),
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
        raise_for_status(response, self.base_url,
                         auth_hint=" (give an API token or the admin token with --token or JETFLEET_TOKEN)")
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

    # -- model registry ---------------------------------------------------------------------------------
    def upload(self, path: Path, *, on_hashed: Progress = lambda _n: None,
               on_sent: Progress = lambda _n: None) -> UploadResult:
        """Stream ``path`` to the upload area (never read whole into memory); the server checks its sha256."""
        digest = hashlib.sha256()
        for chunk in _chunks(path):
            digest.update(chunk)
            on_hashed(len(chunk))

        def body() -> Iterator[bytes]:
            for chunk in _chunks(path):
                yield chunk
                on_sent(len(chunk))

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(path.stat().st_size),
                   "X-Artifact-SHA256": digest.hexdigest()}
        response = self.request("POST", "/api/v1/models/uploads", content=body(), headers=headers,
                                timeout=httpx.Timeout(30.0, write=300.0))
        return UploadResult.model_validate_json(response.content)

    def create_version(self, name: str, request: CreateVersion) -> VersionRecord:
        response = self.request("POST", f"/api/v1/models/{name}/versions",
                                content=request.model_dump_json(exclude_none=True),
                                headers={"Content-Type": "application/json"}, timeout=300.0)
        return VersionRecord.model_validate_json(response.content)

    def models(self) -> list[ModelSummary]:
        return _MODEL_LIST.validate_json(self.request("GET", "/api/v1/models").content)

    def model(self, name: str) -> ModelDetail:
        return ModelDetail.model_validate_json(self.request("GET", f"/api/v1/models/{name}").content)

    def move_tag(self, name: str, tag: str, version: int) -> TagRecord:
        response = self.request("PUT", f"/api/v1/models/{name}/tags/{tag}", json=MoveTag(version=version).model_dump())
        return TagRecord.model_validate_json(response.content)

    def deploy(self, name: str, tag: str, devices: list[str], all_devices: bool,
               selector: str | None = None) -> DeployResult:
        body = DeployRequest(tag=tag, devices=devices, all=all_devices, selector=selector)
        response = self.request("POST", f"/api/v1/models/{name}/deployments", json=body.model_dump())
        return DeployResult.model_validate_json(response.content)

    def undeploy(self, name: str, devices: list[str], all_devices: bool, selector: str | None = None) -> list[str]:
        body = UndeployRequest(devices=devices, all=all_devices, selector=selector)
        response = self.request("POST", f"/api/v1/models/{name}/undeploy", json=body.model_dump())
        return _DEVICE_IDS.validate_json(response.content)

    def model_status(self, name: str) -> ModelStatusReport:
        return ModelStatusReport.model_validate_json(self.request("GET", f"/api/v1/models/{name}/status").content)

    # -- jobs -------------------------------------------------------------------------------------------
    def create_job(self, body: CreateJob) -> JobRecord:
        response = self.request("POST", "/api/v1/jobs", content=body.model_dump_json(exclude_none=True),
                                headers={"Content-Type": "application/json"})
        return JobRecord.model_validate_json(response.content)

    def jobs(self) -> list[JobRecord]:
        return _JOB_LIST.validate_json(self.request("GET", "/api/v1/jobs").content)

    def job(self, name: str) -> JobRecord:
        return JobRecord.model_validate_json(self.request("GET", f"/api/v1/jobs/{name}").content)

    def run_job(self, name: str, devices: list[str]) -> RunResult:
        response = self.request("POST", f"/api/v1/jobs/{name}/run", json=RunJob(devices=devices).model_dump())
        return RunResult.model_validate_json(response.content)

    def delete_job(self, name: str) -> None:
        self.request("DELETE", f"/api/v1/jobs/{name}")

    def job_results(self, name: str, device_id: str | None = None) -> Iterator[ResultRecord]:
        """Every stored result of the job, oldest first, fetched page by page."""
        after = 0
        while True:
            params: dict[str, str | int] = {"after_id": after}
            if device_id:
                params["device_id"] = device_id
            page = _RESULT_LIST.validate_json(self.request("GET", f"/api/v1/jobs/{name}/results",
                                                           params=params).content)
            yield from page
            if not page:
                return
            after = page[-1].id
    # -- rollouts and labels ----------------------------------------------------------------------------
    def set_labels(self, device_id: str, labels: dict[str, str], remove: list[str]) -> DeviceRecord:
        response = self.request("PUT", f"/api/v1/edge-devices/{device_id}/labels",
                                json={"set": labels, "remove": remove})
        return DeviceRecord.model_validate_json(response.content)

    def start_rollout(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/v1/rollouts", json=body).json()
        return result

    def rollouts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/rollouts").json()
        return result

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/rollouts/{rollout_id}").json()
        return result

    def rollout_action(self, rollout_id: int, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/rollouts/{rollout_id}/{action}").json()
        return result


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK_BYTES):
            yield chunk

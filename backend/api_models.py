"""HTTP endpoints of the model registry (/api/v1/models, admin) and artifact downloads (device or admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from jetfleet.backend import appstate, drift, model_registry, rollouts
from jetfleet.backend import devices as devices_registry
from jetfleet.backend.api_params import DeviceIdPath, ModelNamePath, Sha256Path, TagPath
from jetfleet.backend.auth import authenticate, device_caller, require_deploy, require_read, token_matches
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
from jetfleet.backend.models_status import model_status
from jetfleet.backend.push import golden_check, read_signature, reference_arrays, resolve_framework
from jetfleet.errors import AuthError, NotFoundError
from jetfleet.httpapi import errors

router = APIRouter(prefix="/api/v1/models", tags=["models"])
device_router = APIRouter(prefix="/api/v1/edge-devices", tags=["devices"])
ARTIFACT_CHUNK_BYTES = 1 << 20


class ArtifactResponse(FileResponse):
    chunk_size = ARTIFACT_CHUNK_BYTES  # Starlette's 64 KiB default costs throughput on big models


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": {
    "schema": {"type": "string", "format": "binary", "minLength": 1}}}}}
_UPLOADED_LINKS = {"version": {"operationId": "create_version", "requestBody": {
    "artifact_upload": "$response.body#/upload_id", "filename": "model.engine", "framework": "tensorrt",
    "tag": "prod"}}}
_VERSION_LINKS = {
    "tag": {"operationId": "move_tag", "parameters": {"name": "$response.body#/name", "tag": "prod"},
            "requestBody": {"version": "$response.body#/version"}},
    "deploy": {"operationId": "deploy", "parameters": {"name": "$response.body#/name"},
               "requestBody": {"tag": "prod", "all": True}},
    "model": {"operationId": "get_model", "parameters": {"name": "$response.body#/name"}},
}
_DEPLOYED_LINKS = {"status": {"operationId": "status_of", "parameters": {"name": "$response.body#/name"}}}


@router.post("/uploads", response_model=UploadResult, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_deploy)], openapi_extra=_UPLOAD_BODY,
             responses={201: {"links": _UPLOADED_LINKS}, **errors(400, 413)})
async def upload(request: Request) -> UploadResult:
    """Stream a file (the raw request body) into the upload area.

    Integrity headers, checked when sent: ``X-Artifact-SHA256`` (the body's sha256, lowercase hex) and
    ``Content-Length``; a mismatch is a 400 and the upload is discarded.
    """
    announced = request.headers.get("content-length")
    result = await appstate.artifacts(request).receive(
        request.stream(), expected_sha256=request.headers.get("x-artifact-sha256"),
        expected_size=int(announced) if announced and announced.isdigit() else None)
    request.state.audit_target = f"upload_id={result.upload_id} sha256={result.sha256}"
    return UploadResult(upload_id=result.upload_id, sha256=result.sha256, size_bytes=result.size_bytes)


@router.post("/{name}/versions", response_model=VersionRecord, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_deploy)], responses={201: {"links": _VERSION_LINKS}, **errors(400, 409)})
def create_version(name: ModelNamePath, body: CreateVersion, request: Request) -> VersionRecord:
    """Make the uploads a new version of NAME (and point ``tag`` at it). A refusal discards the uploads."""
    store = appstate.artifacts(request)
    uploads = [u for u in (body.artifact_upload, body.golden_input_upload, body.golden_output_upload) if u]
    reference_upload = [body.reference_upload] if body.reference_upload else []
    try:
        artifact, artifact_path = store.upload(body.artifact_upload, "artifact_upload")
        framework, stored_name = resolve_framework(body.filename, body.framework)
        signature = read_signature(artifact_path, stored_name, framework)
        golden = golden_check(store, body, signature)
        reference = drift.reference_sketches(reference_arrays(store, body, signature))
        now = appstate.now()
        with appstate.sessions(request).begin() as session:
            row = model_registry.add_version(session, name=name, sha256=artifact.sha256, size_bytes=artifact.size_bytes,
                                       framework=framework, filename=stored_name, signature=signature,
                                       golden=golden, now=now)
            if reference:
                drift.store_reference(session, name, row.version, reference, source="pushed", now=now)
            followers: list[str] = []
            if body.tag:
                rollouts.refuse_if_active(session, name, body.tag)
                _, followers = model_registry.set_tag(session, name, body.tag, row.version, now)
                model_registry.bump_serials(session, followers)
            for upload_id in uploads:
                store.commit(upload_id)
            record = model_registry.version_record(row, [body.tag] if body.tag else [])
    finally:
        for upload_id in uploads + reference_upload:
            store.discard(upload_id)  # committed ones are gone already; the reference lives on as sketches
    appstate.desired(request).invalidate(followers)
    return record


@router.get("", response_model=list[ModelSummary], dependencies=[Depends(require_read)])
def list_models(request: Request) -> list[ModelSummary]:
    with appstate.sessions(request).begin() as session:
        return model_registry.list_models(session)


@router.get("/{name}", response_model=ModelDetail, dependencies=[Depends(require_read)])
def get_model(name: ModelNamePath, request: Request) -> ModelDetail:
    with appstate.sessions(request).begin() as session:
        return model_registry.model_detail(session, name)


@router.put("/{name}/tags/{tag}", response_model=TagRecord, dependencies=[Depends(require_deploy)])
def move_tag(name: ModelNamePath, tag: TagPath, body: MoveTag, request: Request) -> TagRecord:
    """Point NAME:TAG at a version; every device following the tag updates."""
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        rollouts.refuse_if_active(session, name, tag)
        previous, followers = model_registry.set_tag(session, name, tag, body.version, now)
        model_registry.bump_serials(session, followers)
    appstate.desired(request).invalidate(followers)
    return TagRecord(name=name, tag=tag, version=body.version, previous_version=previous, devices=followers)


@router.post("/{name}/deployments", response_model=DeployResult, dependencies=[Depends(require_deploy)],
             responses={200: {"links": _DEPLOYED_LINKS}})
def deploy(name: ModelNamePath, body: DeployRequest, request: Request) -> DeployResult:
    """Devices follow NAME:TAG from now on (a repeated deploy also retries a version that failed there)."""
    request.state.audit_target = f"name={name} tag={body.tag} {_describe(body.devices, body.all, body.selector)}"
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        targets = _targets(session, body.devices, body.all, body.selector)
        version, devices = model_registry.deploy(session, name, body.tag, targets, now)
        model_registry.bump_serials(session, devices)
    appstate.desired(request).invalidate(devices)
    return DeployResult(name=name, tag=body.tag, version=version, devices=devices)


@router.post("/{name}/undeploy", response_model=list[str], dependencies=[Depends(require_deploy)])
def undeploy(name: ModelNamePath, body: UndeployRequest, request: Request) -> list[str]:
    """Devices stop serving NAME (they keep the files for a quick redeploy)."""
    request.state.audit_target = f"name={name} {_describe(body.devices, body.all, body.selector)}"
    with appstate.sessions(request).begin() as session:
        devices = model_registry.undeploy(session, name, _targets(session, body.devices, body.all, body.selector))
        model_registry.bump_serials(session, devices)
    appstate.desired(request).invalidate(devices)
    return devices


def _describe(device_ids: list[str], all_devices: bool, selector: str | None) -> str:
    if selector is not None:
        return f"selector={selector}"
    return "devices=all" if all_devices else f"devices={','.join(device_ids)}"


def _targets(session: Session, device_ids: list[str], all_devices: bool, selector: str | None) -> list[str] | None:
    if selector is not None:
        matched = devices_registry.select_devices(session, selector)
        if not matched:
            raise NotFoundError(f"selector: {selector!r} matches no device (see the labels: jetfleet fleet status)")
        return matched
    return None if all_devices else device_ids


@router.get("/{name}/status", response_model=ModelStatusReport, dependencies=[Depends(require_read)])
def status_of(name: ModelNamePath, request: Request) -> ModelStatusReport:
    """What each device following NAME actually serves (from its heartbeats)."""
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        return model_status(session, name, appstate.now())


@router.get("/artifacts/{sha256}", dependencies=[Depends(require_read)], response_class=FileResponse)
def admin_artifact(sha256: Sha256Path, request: Request) -> FileResponse:
    return ArtifactResponse(appstate.artifacts(request).open_checked(sha256), media_type="application/octet-stream")


@device_router.get("/{device_id}/artifacts/{sha256}", response_class=FileResponse,
                   responses={206: {"description": "Partial content (Range)"},
                              **errors(401, 416)})
async def device_artifact(device_id: DeviceIdPath, sha256: Sha256Path, request: Request,
                          token: Annotated[str | None, Depends(device_caller)]) -> FileResponse:
    """An artifact of a model deployed to this device (or any, for a ``read`` token); HTTP Range is supported."""
    if not await _is_reader(request, token):
        ingest = request.app.state.ingest
        auth = ingest.cached_auth(device_id) or await run_in_threadpool(ingest.load_auth, device_id)
        if not token_matches(token, auth.token_hash):
            raise AuthError(f"invalid device token for '{device_id}'")
        desired = appstate.desired(request)
        entry = desired.cached(device_id)
        if entry is None:
            entry = await run_in_threadpool(desired.load, device_id)
        if not entry.artifact_allowed(sha256):
            raise NotFoundError(f"artifact {sha256} is not part of a model deployed to '{device_id}'")
    path = await run_in_threadpool(appstate.artifacts(request).open_checked, sha256)
    return ArtifactResponse(path, media_type="application/octet-stream")


async def _is_reader(request: Request, token: str | None) -> bool:
    """An API token (any scope) may read any artifact; anything else must be this device's token."""
    try:
        return await authenticate(request, token) is not None
    except HTTPException:  # not an API token: it may still be the device's
        return False

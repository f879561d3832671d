"""HTTP endpoints of the device registry (/api/v1/edge-devices)."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from jetfleet.backend import appstate, devices, invalidation, model_registry
from jetfleet.backend.api_params import DeviceIdPath
from jetfleet.backend.auth import device_caller, require_admin, require_read
from jetfleet.backend.ingest import HeartbeatIngest
from jetfleet.errors import AuthError
from jetfleet.httpapi import errors
from jetfleet.protocol import DeviceRecord, Heartbeat, HeartbeatResponse, RegisterRequest, RegisterResponse

router = APIRouter(prefix="/api/v1/edge-devices", tags=["devices"])
DeviceToken = Annotated[str | None, Depends(device_caller)]
# OpenAPI links: what a fuzzer (or a generated client) does next with a registration's answer.
_REGISTERED_LINKS = {
    "heartbeat": {"operationId": "heartbeat", "parameters": {
        "device_id": "$response.body#/device/device_id",
        "header.authorization": "Bearer {$response.body#/device_token}"}},
    "device": {"operationId": "get_device", "parameters": {"device_id": "$response.body#/device/device_id"}},
}


@router.post("/register", response_model=RegisterResponse,
             responses={200: {"description": "Already registered to this caller (no new token)"},
                        201: {"description": "Device id claimed; the token is returned once",
                              "links": _REGISTERED_LINKS},
                        **errors(401, 409)})
def register_device(body: RegisterRequest, request: Request, response: Response, device_token: DeviceToken,
                    x_provisioning_key: Annotated[str | None, Header()] = None) -> RegisterResponse:
    settings = appstate.settings(request)
    if settings.provisioning_key and not hmac.compare_digest((x_provisioning_key or "").encode(),
                                                           settings.provisioning_key.encode()):
        raise AuthError("registration needs the fleet's provisioning key (agent config key 'api_key')")
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        outcome = devices.register(session, body, device_token=device_token, settings=settings, now=now)
        if outcome.token is not None:  # a new token: other replicas drop the old one they hold
            invalidation.mark(session, auth=[body.device_id])
        if outcome.labels_changed:
            model_registry.bump_serials(session, [body.device_id])
        record = devices.device_record(outcome.device, settings=settings, now=now)
    if outcome.labels_changed:
        appstate.desired(request).invalidate([body.device_id])
    request.app.state.ingest.remember(body.device_id, outcome.device.token_hash, outcome.device.heartbeat_interval)
    response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
    request.app.state.counters.registration()
    return RegisterResponse(device=record, device_token=outcome.token, config=record.config,
                            manifest_public_key=request.app.state.manifest_public_key)


@router.post("/{device_id}/heartbeat", response_model=HeartbeatResponse,
             responses={304: {"description": "If-None-Match matched: the desired state is unchanged "
                                             "(the heartbeat itself was recorded)"},
                        **errors(401, 404)})
async def heartbeat(device_id: DeviceIdPath, body: Heartbeat, request: Request,
                    device_token: DeviceToken,
                    if_none_match: Annotated[str | None, Header()] = None) -> Response:
    state = request.app.state
    ingest: HeartbeatIngest = state.ingest
    auth = ingest.cached_auth(device_id)
    if auth is None:
        auth = await run_in_threadpool(ingest.load_auth, device_id)
    ingest.check_token(device_id, auth, device_token)
    ingest.record(device_id, body, auth, appstate.now(), peer_host=request.client.host if request.client else None)
    state.counters.heartbeat()
    entry = state.desired.cached(device_id) or await run_in_threadpool(state.desired.load, device_id)
    payload, etag = state.desired.answer(entry, auth, body)
    if if_none_match is not None and if_none_match.strip() == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return Response(payload, media_type="application/json", headers={"ETag": etag})


@router.get("", response_model=list[DeviceRecord], dependencies=[Depends(require_read)])
def list_devices(request: Request, status: Literal["online", "offline"] | None = None) -> list[DeviceRecord]:
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        return devices.list_devices(session, status=status, settings=appstate.settings(request), now=appstate.now())


@router.get("/{device_id}", response_model=DeviceRecord, dependencies=[Depends(require_read)])
def get_device(device_id: DeviceIdPath, request: Request) -> DeviceRecord:
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        device = devices.get_device(session, device_id)
        return devices.device_record(device, settings=appstate.settings(request), now=appstate.now())


@router.post("/{device_id}/reprovision", response_model=DeviceRecord, dependencies=[Depends(require_admin)])
def reprovision_device(device_id: DeviceIdPath, request: Request) -> DeviceRecord:
    """Release the device id so that the next registration claims it (new token)."""
    request.app.state.ingest.invalidate(device_id)
    with appstate.sessions(request).begin() as session:
        device = devices.reprovision(session, device_id)
        invalidation.mark(session, auth=[device_id])
        return devices.device_record(device, settings=appstate.settings(request), now=appstate.now())


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def remove_device(device_id: DeviceIdPath, request: Request) -> None:
    request.app.state.ingest.flush()
    request.app.state.ingest.invalidate(device_id)
    with appstate.sessions(request).begin() as session:
        devices.remove(session, device_id)
        invalidation.mark(session, desired=[device_id], auth=[device_id])
    request.app.state.desired.invalidate([device_id])

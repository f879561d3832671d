"""HTTP endpoints of the device registry (/api/v1/edge-devices)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from jetfleet.backend import appstate, devices
from jetfleet.backend.auth import bearer_token, require_admin
from jetfleet.backend.ingest import HeartbeatIngest
from jetfleet.errors import AuthError
from jetfleet.protocol import DeviceRecord, Heartbeat, HeartbeatResponse, RegisterRequest, RegisterResponse

router = APIRouter(prefix="/api/v1/edge-devices", tags=["devices"])


@router.post("/register", response_model=RegisterResponse,
             responses={200: {"description": "Already registered to this caller (no new token)"},
                        201: {"description": "Device id claimed; the token is returned once"},
                        409: {"description": "The device id belongs to another device"}})
def register_device(body: RegisterRequest, request: Request, response: Response,
                    authorization: str | None = Header(default=None),
                    x_provisioning_key: str | None = Header(default=None)) -> RegisterResponse:
    settings = appstate.settings(request)
    if settings.provisioning_key and x_provisioning_key != settings.provisioning_key:
        raise AuthError("registration needs the fleet's provisioning key (agent config key 'api_key')")
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        outcome = devices.register(session, body, device_token=bearer_token(authorization), settings=settings, now=now)
        record = devices.device_record(outcome.device, settings=settings, now=now)
    request.app.state.ingest.remember(body.device_id, outcome.device.token_hash, outcome.device.heartbeat_interval)
    response.status_code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
    request.app.state.counters.registration()
    return RegisterResponse(device=record, device_token=outcome.token, config=record.config,
                            manifest_public_key=request.app.state.manifest_public_key)


@router.post("/{device_id}/heartbeat", response_model=HeartbeatResponse,
             responses={304: {"description": "If-None-Match matched: the desired state is unchanged "
                                             "(the heartbeat itself was recorded)"},
                        401: {"description": "Bad device token"}, 404: {"description": "Unknown device"}})
async def heartbeat(device_id: str, body: Heartbeat, request: Request,
                    authorization: str | None = Header(default=None),
                    if_none_match: str | None = Header(default=None)) -> Response:
    state = request.app.state
    ingest: HeartbeatIngest = state.ingest
    auth = ingest.cached_auth(device_id)
    if auth is None:
        auth = await run_in_threadpool(ingest.load_auth, device_id)
    ingest.check_token(device_id, auth, bearer_token(authorization))
    ingest.record(device_id, body, auth, appstate.now(), peer_host=request.client.host if request.client else None)
    state.counters.heartbeat()
    entry = state.desired.cached(device_id) or await run_in_threadpool(state.desired.load, device_id)
    payload, etag = state.desired.answer(entry, auth, body)
    if if_none_match is not None and if_none_match.strip() == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return Response(payload, media_type="application/json", headers={"ETag": etag})


@router.get("", response_model=list[DeviceRecord], dependencies=[Depends(require_admin)])
def list_devices(request: Request, status: Literal["online", "offline"] | None = None) -> list[DeviceRecord]:
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        return devices.list_devices(session, status=status, settings=appstate.settings(request), now=appstate.now())


@router.get("/{device_id}", response_model=DeviceRecord, dependencies=[Depends(require_admin)])
def get_device(device_id: str, request: Request) -> DeviceRecord:
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        device = devices.get_device(session, device_id)
        return devices.device_record(device, settings=appstate.settings(request), now=appstate.now())


@router.post("/{device_id}/reprovision", response_model=DeviceRecord, dependencies=[Depends(require_admin)])
def reprovision_device(device_id: str, request: Request) -> DeviceRecord:
    """Release the device id so that the next registration claims it (new token)."""
    request.app.state.ingest.invalidate(device_id)
    with appstate.sessions(request).begin() as session:
        device = devices.reprovision(session, device_id)
        return devices.device_record(device, settings=appstate.settings(request), now=appstate.now())


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_admin)])
def remove_device(device_id: str, request: Request) -> None:
    request.app.state.ingest.flush()
    request.app.state.ingest.invalidate(device_id)
    with appstate.sessions(request).begin() as session:
        devices.remove(session, device_id)
    request.app.state.desired.invalidate([device_id])

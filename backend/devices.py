"""The device registry: claiming device ids, recording heartbeats, and describing devices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jetfleet.backend.auth import hash_token, new_token, token_matches
from jetfleet.backend.models import Device
from jetfleet.backend.settings import BackendSettings
from jetfleet.errors import ConflictError, NotFoundError
from jetfleet.jobs import OutboxStatus
from jetfleet.protocol import (
    DeviceConfig,
    DeviceRecord,
    HardwareInfo,
    Metrics,
    ModelStatus,
    RegisterRequest,
    ServiceEndpoint,
)
from jetfleet.selectors import parse_selector


@dataclass(frozen=True)
class Registration:
    device: Device
    token: str | None  # set only when the device id was (re)claimed just now
    created: bool
    labels_changed: bool = False  # jobs by selector may now apply, or no longer


def register(session: Session, request: RegisterRequest, *, device_token: str | None,
             settings: BackendSettings, now: datetime) -> Registration:
    """Claim ``request.device_id`` or update it; a different caller cannot take over a claimed id."""
    device = session.get(Device, request.device_id)
    if device is None:
        device = Device(device_id=request.device_id, registered_at=now, heartbeats_received=0, models=[], services=[],
                        manifest_keys=[], labels={})
        session.add(device)
        token: str | None = new_token()
        created = True
    elif device.token_hash is None:  # re-provisioned by an admin: the next caller claims it
        token, created = new_token(), True
    elif token_matches(device_token, device.token_hash):
        token, created = None, False
    else:
        raise ConflictError(
            f"device id '{request.device_id}' is already registered by another device. If this is the same "
            f"device and it lost its token, an admin can run: jetfleet fleet reprovision {request.device_id}")
    if token is not None:
        device.token_hash = hash_token(token)
    labels_before = dict(device.labels or {})
    _apply_registration(device, request)
    session.flush()
    return Registration(device=device, token=token, created=created,
                        labels_changed=device.labels != labels_before)


def _apply_registration(device: Device, request: RegisterRequest) -> None:
    device.device_name = request.device_name
    device.device_type = request.device_type
    device.location = request.location
    device.hardware = request.hardware.model_dump(mode="json")
    device.agent_version = request.agent_version
    device.heartbeat_interval = request.heartbeat_interval
    if request.labels:  # the agent config's labels win over admin ones with the same key
        device.labels = {**(device.labels or {}), **request.labels}


def effective_interval(device: Device, settings: BackendSettings) -> float:
    return settings.heartbeat_interval or device.heartbeat_interval


def device_config(device: Device, settings: BackendSettings) -> DeviceConfig:
    return DeviceConfig(heartbeat_interval=effective_interval(device, settings),
                        offline_after_missed=settings.offline_after_missed)


def is_online(device: Device, now: datetime) -> bool:
    return device.offline_after is not None and now <= device.offline_after


def device_record(device: Device, *, settings: BackendSettings, now: datetime) -> DeviceRecord:
    return DeviceRecord(
        device_id=device.device_id,
        device_name=device.device_name,
        device_type=device.device_type,
        location=device.location,
        status="online" if is_online(device, now) else "offline",
        registered_at=device.registered_at,
        last_heartbeat=device.last_heartbeat_at,
        metrics=Metrics.model_validate(device.last_metrics) if device.last_metrics is not None else None,
        hardware=HardwareInfo.model_validate(device.hardware),
        config=device_config(device, settings),
        agent_version=device.agent_version,
        models=[ModelStatus.model_validate(m) for m in _as_list(device.models)],
        services=[ServiceEndpoint.model_validate(s) for s in _as_list(device.services)],
        manifest_keys=[str(k) for k in _as_list(device.manifest_keys)],
        labels=dict(device.labels or {}),
        outbox=OutboxStatus.model_validate(device.outbox) if device.outbox else None,
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def list_devices(session: Session, *, status: str | None, settings: BackendSettings,
                 now: datetime) -> list[DeviceRecord]:
    devices = session.scalars(select(Device).order_by(Device.device_id))
    records = [device_record(d, settings=settings, now=now) for d in devices]
    return [r for r in records if status is None or r.status == status]


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFoundError(f"unknown device '{device_id}'")
    return device


def reprovision(session: Session, device_id: str) -> Device:
    """Release the device id: the next registration claims it and receives a new token."""
    device = get_device(session, device_id)
    device.token_hash = None
    return device


def remove(session: Session, device_id: str) -> None:
    session.delete(get_device(session, device_id))


def set_labels(session: Session, device_id: str, labels: dict[str, str], remove: list[str]) -> Device:
    device = get_device(session, device_id)
    current = {k: v for k, v in (device.labels or {}).items() if k not in remove}
    device.labels = {**current, **labels}
    return device


def select_devices(session: Session, selector: str) -> list[str]:
    """Ids of the devices whose labels match ``selector`` (sorted); a bad selector raises naming its part."""
    parsed = parse_selector(selector)
    rows = session.execute(select(Device.device_id, Device.labels).order_by(Device.device_id))
    return [device_id for device_id, labels in rows if parsed.matches(labels or {})]

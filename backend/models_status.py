"""``models status``: what each device following a model actually serves, from its last heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jetfleet.backend import model_registry
from jetfleet.backend.devices import is_online
from jetfleet.backend.model_schemas import DeviceModelState, ModelStatusReport
from jetfleet.backend.models import Device
from jetfleet.errors import NotFoundError


def model_status(session: Session, name: str, now: datetime) -> ModelStatusReport:
    deployments = model_registry.deployments_of(session, name)
    if not deployments and not model_registry.latest_version(session, name):
        raise NotFoundError(f"unknown model '{name}'")
    devices = session.scalars(select(Device).order_by(Device.device_id))
    states = []
    for device in devices:
        reported = _reported(device.models, name)
        deployment = deployments.get(device.device_id)
        if deployment is None and reported is None:
            continue
        reported = reported or {}
        tag, tag_version = deployment if deployment else (None, None)
        states.append(DeviceModelState(
            device_id=device.device_id, version=reported.get("serving_version"), state=reported.get("state"),
            reason=reported.get("reason"), endpoint=reported.get("endpoint"), tag=tag,
            target_version=tag_version, last_known_good=reported.get("last_known_good"),
            online=is_online(device, now)))
    return ModelStatusReport(model=name, devices=states)


def _reported(models: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(models, list):
        return None
    return next((m for m in models if isinstance(m, dict) and m.get("name") == name), None)

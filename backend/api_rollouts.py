"""HTTP endpoints of staged rollouts (/api/v1/rollouts, admin) and device labels."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from jetfleet.backend import appstate, devices, model_registry, rollout_machine, rollouts
from jetfleet.backend.api_params import DeviceIdPath, RolloutIdPath
from jetfleet.backend.auth import require_admin, require_deploy, require_read
from jetfleet.backend.rollout_machine import DEFAULT_DEVICE_TIMEOUT_SECONDS, Rollout
from jetfleet.backend.rollout_spec import GATE_PATTERN, WAVES_PATTERN
from jetfleet.backend.rollouts import RolloutEngine
from jetfleet.httpapi import errors
from jetfleet.manifest import MODEL_NAME_PATTERN, TAG_PATTERN
from jetfleet.protocol import DeviceRecord, Labels, valid_labels
from jetfleet.selectors import LABEL_KEY_PATTERN, SELECTOR_PATTERN

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])
labels_router = APIRouter(prefix="/api/v1/edge-devices", tags=["devices"], dependencies=[Depends(require_admin)])


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutRequest(_Wire):
    model: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    tag: Annotated[str, Field(pattern=TAG_PATTERN)]
    version: Annotated[int, Field(ge=1)]
    waves: Annotated[str, Field(pattern=WAVES_PATTERN, description="cumulative wave sizes, e.g. '1,10%,50%,100%'")]
    max_failures: Annotated[str, Field(pattern=r"^\s*(?:[0-9]{1,9}|[0-9]{1,3}(?:\.[0-9]+)?%)\s*$")] = Field(
        default="0", description="devices (e.g. 2) or a percentage (e.g. 10%)")
    soak_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = 0.0
    gates: list[Annotated[str, Field(pattern=GATE_PATTERN)]] = Field(
        default_factory=list, description="e.g. 'error_ratio<0.01', 'p99_ms<50'")
    device_timeout_seconds: Annotated[float, Field(ge=1, le=7 * 86400)] = Field(
        default=DEFAULT_DEVICE_TIMEOUT_SECONDS,
        description="a device still updating (or deferred) this long after its wave started has failed")
    selector: Annotated[str, Field(max_length=1000, pattern=SELECTOR_PATTERN)] | None = Field(
        default=None, description="only the followers whose labels match (e.g. 'site=lab-a'); once completed they "
                                  "stay pinned to the version and the tag does not move")


class LabelChange(_Wire):
    set: Labels = Field(default_factory=dict)
    remove: list[Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]] = Field(default_factory=list)

    @field_validator("set")
    @classmethod
    def _valid(cls, value: dict[str, str]) -> dict[str, str]:
        return valid_labels(value)


def _engine(request: Request) -> RolloutEngine:
    engine: RolloutEngine = request.app.state.rollouts
    return engine


@router.post("", response_model=Rollout, status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_deploy)],
             responses=errors(404))
def create_rollout(body: RolloutRequest, request: Request) -> Rollout:
    """Move NAME:TAG to VERSION wave by wave (instead of every follower at once)."""
    now = appstate.now()
    request.app.state.ingest.flush()
    with _engine(request).lock, appstate.sessions(request).begin() as session:
        rollout, changed = rollouts.create(session, name=body.model, tag=body.tag, version=body.version,
                                           waves=body.waves, max_failures=body.max_failures,
                                           soak_seconds=body.soak_seconds, gates=body.gates, now=now,
                                           device_timeout_seconds=body.device_timeout_seconds,
                                           selector=body.selector)
    appstate.desired(request).invalidate(changed)
    return rollout


@router.get("", response_model=list[Rollout], dependencies=[Depends(require_read)])
def list_rollouts(request: Request) -> list[Rollout]:
    with appstate.sessions(request).begin() as session:
        return rollouts.list_all(session)


@router.get("/{rollout_id}", response_model=Rollout, dependencies=[Depends(require_read)])
def get_rollout(rollout_id: RolloutIdPath, request: Request) -> Rollout:
    with appstate.sessions(request).begin() as session:
        return rollouts.load(session, rollout_id)[1]


@router.post("/{rollout_id}/pause", response_model=Rollout, dependencies=[Depends(require_deploy)])
def pause(rollout_id: RolloutIdPath, request: Request) -> Rollout:
    """No new wave starts (devices already updating finish)."""
    return _engine(request).act(rollout_id, rollout_machine.pause)


@router.post("/{rollout_id}/resume", response_model=Rollout, dependencies=[Depends(require_deploy)])
def resume(rollout_id: RolloutIdPath, request: Request) -> Rollout:
    return _engine(request).act(rollout_id, rollout_machine.resume)


@router.post("/{rollout_id}/abort", response_model=Rollout, dependencies=[Depends(require_deploy)])
def abort(rollout_id: RolloutIdPath, request: Request) -> Rollout:
    """Every device of the rollout goes back to the version it served before (blue/green swap)."""
    return _engine(request).act(rollout_id, rollout_machine.abort)


@labels_router.put("/{device_id}/labels", response_model=DeviceRecord)
def set_labels(device_id: DeviceIdPath, body: LabelChange, request: Request) -> DeviceRecord:
    """Set labels (key=value) and remove keys of a device (for --selector)."""
    request.app.state.ingest.flush()
    with appstate.sessions(request).begin() as session:
        device = devices.set_labels(session, device_id, dict(body.set), list(body.remove))
        model_registry.bump_serials(session, [device_id])  # jobs by selector may now apply, or no longer
        record = devices.device_record(device, settings=appstate.settings(request), now=appstate.now())
    appstate.desired(request).invalidate([device_id])
    return record

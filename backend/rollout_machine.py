"""The rollout state machine (pure): (rollout, what the devices report, now) -> the next rollout.

::

    running --(every wave succeeded)--> completed
    running --(failures > max_failures)--> halted --(abort)--> aborted
    running <--(pause / resume)--> paused          running|paused|halted --(abort)--> aborted

A wave starts when the one before it succeeded; it succeeds once every device in it committed the new
version or failed within the failure budget and, for the soak time after that, every gate held on every
committed device. A device still updating (or deferred by its update lock) ``device_timeout_seconds`` after
its wave started has failed (``TIMEOUT/...``): one offline device cannot stall a rollout for ever.
Devices: pending -> updating -> [deferred] -> committed | failed; after an abort: reverting -> reverted.
The control-plane loop persists each result and makes started devices want the new version
(``wants_new``); nothing here reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from jetfleet.backend.rollout_spec import parse_gate, parse_max_failures

ACTIVE = ("running", "paused", "halted")
FAILED_STATES = ("rolled_back", "failed")
DEFAULT_DEVICE_TIMEOUT_SECONDS = 1800.0


class RolloutDevice(BaseModel):
    device_id: str
    wave: int
    state: str = "pending"
    reason: str | None = None
    version: int | None = None  # what it serves, as last reported
    gates: dict[str, float] = Field(default_factory=dict)  # the gate metrics it reported last


class RolloutWave(BaseModel):
    devices: list[str]
    state: str = "pending"  # pending | updating | soaking | succeeded | failed | aborted
    started_at: datetime | None = None
    committed_at: datetime | None = None  # every device committed: the soak starts
    finished_at: datetime | None = None


class Rollout(BaseModel):
    id: int = 0
    model: str
    tag: str
    from_version: int | None
    to_version: int
    state: str = "running"
    reason: str | None = None
    waves: list[RolloutWave]
    devices: list[RolloutDevice]
    max_failures: str = "0"
    soak_seconds: float = 0.0
    gates: list[str] = Field(default_factory=list)
    device_timeout_seconds: float = DEFAULT_DEVICE_TIMEOUT_SECONDS
    selector: str | None = None  # only the followers it matched at the start; the tag stays where it was
    kept_pins: dict[str, int] = Field(default_factory=dict)  # pins its devices had before (an earlier --selector)
    created_at: datetime
    updated_at: datetime

    def device(self, device_id: str) -> RolloutDevice:
        return next(d for d in self.devices if d.device_id == device_id)

    def wants_new(self) -> set[str]:
        """Devices that should run ``to_version`` now (those of started waves, unless aborted)."""
        if self.state == "aborted":
            return set()
        return {d for w in self.waves if w.state != "pending" for d in w.devices}

    def pins(self) -> dict[str, int | None]:
        """The version each of its devices is pinned to now (None: it follows the tag)."""
        if self.state == "completed" and self.selector is None:
            return {}  # the tag moved: every follower runs it, pins go (the caller clears them with the move)
        wants = {d.device_id for d in self.devices} if self.state == "completed" else self.wants_new()
        return {d.device_id: self.to_version if d.device_id in wants else self.kept_pins.get(d.device_id)
                for d in self.devices}


@dataclass(frozen=True)
class DeviceReport:
    """One device's last heartbeat entry for the rollout's model."""

    serving_version: int | None = None
    target_version: int | None = None
    state: str | None = None
    reason: str | None = None
    gates: Mapping[str, float | None] = field(default_factory=dict)


def new_rollout(*, model: str, tag: str, from_version: int | None, to_version: int, waves: list[list[str]],
                max_failures: str, soak_seconds: float, gates: list[str], now: datetime,
                device_timeout_seconds: float = DEFAULT_DEVICE_TIMEOUT_SECONDS, selector: str | None = None,
                kept_pins: dict[str, int] | None = None) -> Rollout:
    devices = [RolloutDevice(device_id=d, wave=i) for i, wave in enumerate(waves) for d in wave]
    return Rollout(model=model, tag=tag, from_version=from_version, to_version=to_version,
                   waves=[RolloutWave(devices=w) for w in waves], devices=devices, max_failures=max_failures,
                   soak_seconds=soak_seconds, gates=gates, device_timeout_seconds=device_timeout_seconds,
                   selector=selector, kept_pins=kept_pins or {}, created_at=now, updated_at=now)


def advance(rollout: Rollout, reports: Mapping[str, DeviceReport], now: datetime) -> Rollout:
    r = rollout.model_copy(deep=True)
    if r.state == "aborted":
        _track_revert(r, reports)
    elif r.state != "completed":
        _track(r, reports)
        if r.state in ("running", "paused"):
            _time_out(r, now)
            _judge_failures(r, now)
        if r.state == "running":
            _progress(r, now)
    if r != rollout:
        r.updated_at = now
    return r


def _track(r: Rollout, reports: Mapping[str, DeviceReport]) -> None:
    gates = [parse_gate(g) for g in r.gates]
    for device in r.devices:
        if device.state in ("pending", "failed"):
            continue
        report = reports.get(device.device_id, DeviceReport())
        device.version = report.serving_version
        if report.serving_version == r.to_version and report.state == "committed":
            device.gates = {k: v for k, v in report.gates.items() if v is not None}
            broken = [g for g in gates if g.holds(report.gates) is False]
            if broken:
                device.state = "failed"
                device.reason = "GATE/" + ",".join(f"{g.metric}={report.gates[g.metric]:g}" for g in broken)
            else:
                device.state, device.reason = "committed", None
        elif report.target_version == r.to_version and report.state in FAILED_STATES:
            device.state, device.reason = "failed", f"{report.state.upper()}/{report.reason or 'UNKNOWN'}"
        elif report.state == "deferred" and report.target_version == r.to_version:
            device.state, device.reason = "deferred", report.reason
        else:
            device.state, device.reason = "updating", None


def _time_out(r: Rollout, now: datetime) -> None:
    for wave in r.waves:
        if wave.started_at is None or (now - wave.started_at).total_seconds() < r.device_timeout_seconds:
            continue
        for device in (r.device(d) for d in wave.devices):
            if device.state in ("updating", "deferred"):
                device.state, device.reason = "failed", "/".join(
                    ["TIMEOUT", device.state.upper(), *([device.reason] if device.reason else [])])


def _judge_failures(r: Rollout, now: datetime) -> None:
    failed = [d for d in r.devices if d.state == "failed"]
    allowed = parse_max_failures(r.max_failures).allowed(len(r.devices))
    if len(failed) <= allowed:
        return
    r.state = "halted"
    listed = ", ".join(f"{d.device_id} ({d.reason})" for d in failed)
    r.reason = f"{len(failed)} device(s) failed, more than --max-failures {r.max_failures}: {listed}"
    for wave in r.waves:
        if wave.state in ("updating", "soaking"):
            wave.state, wave.finished_at = "failed", now


def _progress(r: Rollout, now: datetime) -> None:
    for wave in r.waves:
        if wave.state == "succeeded":
            continue
        if wave.state == "pending":
            _start(r, wave, now)
            return
        devices = [r.device(d) for d in wave.devices]
        if not all(d.state in ("committed", "failed") for d in devices):
            return  # a failed device is one the budget tolerates: a halted rollout never gets here
        if wave.state == "updating":
            wave.state, wave.committed_at = "soaking", now
        assert wave.committed_at is not None
        if (now - wave.committed_at).total_seconds() < r.soak_seconds:
            return
        wave.state, wave.finished_at = "succeeded", now
    if all(w.state == "succeeded" for w in r.waves):
        failed = [d.device_id for d in r.devices if d.state == "failed"]
        r.state = "completed"
        r.reason = f"{len(failed)} device(s) failed within --max-failures {r.max_failures}: " \
                   f"{', '.join(failed)}" if failed else None


def _start(r: Rollout, wave: RolloutWave, now: datetime) -> None:
    wave.state, wave.started_at = "updating", now
    for device_id in wave.devices:
        r.device(device_id).state = "updating"


def _track_revert(r: Rollout, reports: Mapping[str, DeviceReport]) -> None:
    for device in r.devices:
        if device.state not in ("reverting", "reverted"):
            continue
        report = reports.get(device.device_id, DeviceReport())
        device.version = report.serving_version
        back = report.serving_version == r.from_version or (report.serving_version is None and r.from_version is None)
        device.state = "reverted" if back else "reverting"


def pause(rollout: Rollout, now: datetime) -> Rollout:
    _require(rollout, ("running",), "pause")
    return rollout.model_copy(update={"state": "paused", "reason": "paused by an admin", "updated_at": now})


def resume(rollout: Rollout, now: datetime) -> Rollout:
    _require(rollout, ("paused",), "resume")
    return rollout.model_copy(update={"state": "running", "reason": None, "updated_at": now})


def abort(rollout: Rollout, now: datetime) -> Rollout:
    """Every started device goes back to ``from_version`` (the tag never left it during the rollout)."""
    _require(rollout, ACTIVE, "abort")
    r = rollout.model_copy(deep=True)
    for wave in r.waves:
        if wave.state in ("updating", "soaking", "pending"):
            wave.state, wave.finished_at = "aborted", now if wave.state != "pending" else None
    for device in r.devices:
        if device.state != "pending":
            device.state = "reverting"
    why = f" (it was halted: {r.reason})" if r.state == "halted" else ""
    r.state, r.reason, r.updated_at = "aborted", f"aborted by an admin{why}", now
    return r


def _require(rollout: Rollout, states: tuple[str, ...], action: str) -> None:
    from jetfleet.errors import ConflictError

    if rollout.state not in states:
        raise ConflictError(f"rollout {rollout.id} is {rollout.state}: cannot {action} it "
                            f"(only when {' or '.join(states)})")

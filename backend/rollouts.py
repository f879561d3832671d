"""Staged rollouts on the control plane: the persisted rollouts and the loop that drives them.

A rollout of NAME:TAG to version V leaves the tag at the old version and *pins* the devices of started
waves to V (``Deployment.pinned_version``); devices of later waves keep the old version and download
nothing. When every wave succeeded the tag moves to V and the pins go; an abort removes the pins, so
every device of the rollout swaps back to the old version (the blue/green swap on the device).

The loop (:class:`RolloutEngine`, a thread) reads the devices' last heartbeats from the database every
``interval`` seconds, advances each rollout (:func:`rollout_machine.advance`), writes it back and
applies the pins; all state is in the database, so a restarted control plane continues where it was.
With several replicas only the leader's loop runs, each tick fenced by its leader epoch
(:mod:`jetfleet.backend.leadership`);
admin actions run on any replica, on rows locked against the loop's writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend import devices, model_registry
from jetfleet.backend.desired_state import DesiredState
from jetfleet.backend.leadership import Leadership, NotLeader, SoleLeader
from jetfleet.backend.models import Device, ModelTag, RolloutRow
from jetfleet.backend.rollout_machine import (
    ACTIVE,
    DEFAULT_DEVICE_TIMEOUT_SECONDS,
    DeviceReport,
    Rollout,
    advance,
    new_rollout,
)
from jetfleet.backend.rollout_spec import GATE_METRICS, parse_gate, parse_max_failures, parse_waves, plan_waves
from jetfleet.errors import ConflictError, NotFoundError

log = logging.getLogger("jetfleet.backend.rollouts")
REVERT_TRACKING = timedelta(days=1)  # an aborted rollout follows its devices' way back this long after a change


def active_rollout(session: Session, name: str, tag: str) -> RolloutRow | None:
    return session.scalar(select(RolloutRow).where(RolloutRow.name == name, RolloutRow.tag == tag,
                                                   RolloutRow.state.in_(ACTIVE)))


def refuse_if_active(session: Session, name: str, tag: str) -> None:
    row = active_rollout(session, name, tag)
    if row is not None:
        raise ConflictError(f"tag: rollout {row.id} of {name}:{tag} is {row.state}; wait for it to complete or "
                            f"run: jetfleet rollouts abort {row.id}")


def create(session: Session, *, name: str, tag: str, version: int, waves: str, max_failures: str,
           soak_seconds: float, gates: list[str], now: datetime,
           device_timeout_seconds: float = DEFAULT_DEVICE_TIMEOUT_SECONDS,
           selector: str | None = None) -> tuple[Rollout, list[str]]:
    """Start a rollout (its first wave too); returns it and the devices whose desired state changed."""
    parse_max_failures(max_failures)
    for gate in gates:
        parse_gate(gate)
    sizes = parse_waves(waves)
    model_registry.get_version(session, name, version)
    tag_row = session.get(ModelTag, (name, tag), with_for_update=True)  # one create at a time, on any replica
    if tag_row is None:
        raise NotFoundError(f"tag: model '{name}' has no tag '{tag}'; point it at a version first "
                            f"(jetfleet models tag {name}:{tag} VERSION)")
    refuse_if_active(session, name, tag)
    if tag_row.version == version:
        raise ConflictError(f"version: {name}:{tag} already points at version {version}")
    chosen = _rollout_devices(session, name, tag, selector)
    rollout = new_rollout(model=name, tag=tag, from_version=tag_row.version, to_version=version,
                          waves=plan_waves(sizes, chosen), max_failures=max_failures, soak_seconds=soak_seconds,
                          gates=gates, now=now, device_timeout_seconds=device_timeout_seconds, selector=selector,
                          kept_pins=model_registry.pins(session, name, tag, chosen))
    row = RolloutRow(name=name, tag=tag, state=rollout.state, doc={}, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    rollout = advance(rollout.model_copy(update={"id": row.id}), {}, now)
    return rollout, save(session, row, rollout, now)


def _rollout_devices(session: Session, name: str, tag: str, selector: str | None) -> list[str]:
    followers = model_registry.followers(session, name, tag)
    if selector is None:
        return followers
    matching = set(devices.select_devices(session, selector))
    chosen = [d for d in followers if d in matching]
    if not chosen:
        raise ConflictError(f"selector: no device following {name}:{tag} matches '{selector}' "
                            f"({len(followers)} follow it; see their labels: jetfleet fleet status)")
    return chosen


def save(session: Session, row: RolloutRow, rollout: Rollout, now: datetime) -> list[str]:
    """Write the rollout and bring the pins (and the tag, once completed) in line; returns changed devices."""
    settled = row.state == rollout.state == "aborted"  # only tracking the revert: the pins were set at the abort
    row.doc, row.state, row.updated_at = rollout.model_dump(mode="json"), rollout.state, now
    if settled:
        changed: list[str] = []
    elif rollout.state == "completed" and rollout.selector is None:
        _, changed = model_registry.set_tag(session, rollout.model, rollout.tag, rollout.to_version, now)
    else:
        changed = model_registry.set_pins(session, rollout.model, rollout.tag, rollout.pins())
    changed = sorted(set(changed))
    model_registry.bump_serials(session, changed)
    return changed


def load(session: Session, rollout_id: int) -> tuple[RolloutRow, Rollout]:
    """The rollout, its row locked until the transaction ends (the leader's loop and any replica's admin
    action never overwrite each other's write)."""
    row = session.get(RolloutRow, rollout_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"unknown rollout {rollout_id} (list them: jetfleet rollouts ls)")
    return row, Rollout.model_validate(row.doc)


def list_all(session: Session) -> list[Rollout]:
    return [Rollout.model_validate(row.doc) for row in session.scalars(select(RolloutRow).order_by(RolloutRow.id))]


def reports(session: Session, rollout: Rollout) -> dict[str, DeviceReport]:
    ids = [d.device_id for d in rollout.devices]
    result = {}
    for device_id, models in session.execute(select(Device.device_id, Device.models)
                                             .where(Device.device_id.in_(ids))):
        entry = next((m for m in models or [] if isinstance(m, dict) and m.get("name") == rollout.model), None)
        if entry is not None:
            result[device_id] = _report(entry)
    return result


def _report(entry: dict[str, Any]) -> DeviceReport:
    return DeviceReport(serving_version=entry.get("serving_version"), target_version=entry.get("target_version"),
                        state=entry.get("state"), reason=entry.get("reason"),
                        gates={metric: entry.get(metric) for metric in GATE_METRICS})


def _needs_work(rollout: Rollout) -> bool:
    return rollout.state in ACTIVE or any(d.state == "reverting" for d in rollout.devices)


class RolloutEngine:
    """The control-plane loop driving every unfinished rollout (one thread; admin actions share its lock)."""

    def __init__(self, sessions: sessionmaker[Session], desired: DesiredState, *, interval: float = 1.0,
                 before_read: Callable[[], object] = lambda: None, leadership: Leadership | None = None) -> None:
        self._sessions = sessions
        self._leadership = leadership or SoleLeader("control-plane")
        self._desired = desired
        self._interval = interval
        self._before_read = before_read
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Advance every unfinished rollout once; returns how many were looked at."""
        self._before_read()
        now = datetime.now(timezone.utc)
        changed: list[str] = []
        with self.lock, self._sessions.begin() as session:
            self._leadership.fence(session)
            rows = list(session.scalars(select(RolloutRow).where(
                RolloutRow.state.in_(ACTIVE) | ((RolloutRow.state == "aborted") &
                                                (RolloutRow.updated_at > now - REVERT_TRACKING)))
                .order_by(RolloutRow.id).with_for_update()))
            looked = 0
            for row in rows:
                current = Rollout.model_validate(row.doc)
                if not _needs_work(current):
                    continue
                looked += 1
                after = advance(current, reports(session, current), now)
                if after != current:
                    if after.state != current.state:
                        log.info("rollout %d of %s:%s is %s%s", after.id, after.model, after.tag, after.state,
                                 f": {after.reason}" if after.reason else "")
                    changed += save(session, row, after, now)
        if changed:
            self._desired.invalidate(changed)
            self._desired.preload(changed)  # one bulk read instead of one per device's next heartbeat
        return looked

    def act(self, rollout_id: int, action: Callable[[Rollout, datetime], Rollout]) -> Rollout:
        """Apply an admin action (pause, resume, abort) under the loop's lock."""
        now = datetime.now(timezone.utc)
        with self.lock, self._sessions.begin() as session:
            row, rollout = load(session, rollout_id)
            after = action(rollout, now)
            changed = save(session, row, after, now)
        self._desired.invalidate(changed)
        return after

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rollouts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._leadership.is_leader():
                continue  # a standby replica: the leader drives the rollouts
            try:
                self.tick()
            except NotLeader as exc:
                log.warning("%s", exc)
            except Exception:  # keep driving; the next tick retries from the database
                log.exception("rollout tick failed")

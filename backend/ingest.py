"""Heartbeat ingest: cached token checks and write-behind batching.

A heartbeat must cost well under a millisecond of server CPU to reach thousands per second on a small
machine. So every device's token hash is held in memory (loaded in bulk at start, kept current by this
process's own registrations and admin changes, and by the other replicas' through
:mod:`jetfleet.backend.cache_listener`), and heartbeats are coalesced per device and written in one batched
UPDATE every ``flush_interval`` seconds (and before any admin read, so reads see their own writes). A crash
loses at most one flush interval of liveness data, never a registration.

Several replicas may write the same device (its heartbeats alternate between them behind a balancer): the
UPDATE keeps the row's newest heartbeat, never replacing it with an older one that a slower flush carries
(last_heartbeat_at, offline_after and the reported state move forward only; the count adds up). Batches
are written in device-id order, so two replicas' flushes cannot deadlock on each other's rows.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import ColumnElement, String, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend.auth import hash_token
from jetfleet.backend.models import Device
from jetfleet.backend.settings import BackendSettings
from jetfleet.errors import AuthError, NotFoundError
from jetfleet.protocol import Heartbeat

log = logging.getLogger("jetfleet.backend.ingest")


@dataclass(frozen=True)
class DeviceAuth:
    token_hash: str | None
    heartbeat_interval: float


class HeartbeatIngest:
    def __init__(self, sessions: sessionmaker[Session], settings: BackendSettings,
                 flush_interval: float = 0.1) -> None:
        self._sessions = sessions
        self._settings = settings
        self._flush_interval = flush_interval
        self._auth: dict[str, DeviceAuth] = {}
        self._auth_epoch = 0
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- authentication ---------------------------------------------------------------------------------
    def cached_auth(self, device_id: str) -> DeviceAuth | None:
        return self._auth.get(device_id)

    def preload(self) -> int:
        """Load every device's token hash in one query (at start: no database read per first heartbeat)."""
        epoch = self._auth_epoch
        with self._sessions() as session:
            rows = session.execute(select(Device.device_id, Device.token_hash, Device.heartbeat_interval)).all()
        loaded = {device_id: DeviceAuth(token_hash, self._settings.heartbeat_interval or interval)
                  for device_id, token_hash, interval in rows}
        with self._lock:
            if epoch == self._auth_epoch:
                self._auth = loaded
        return len(loaded)

    def load_auth(self, device_id: str) -> DeviceAuth:
        """Read the device's token hash and interval from the database (blocking)."""
        epoch = self._auth_epoch
        with self._sessions() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise NotFoundError(f"unknown device '{device_id}': register it first")
            auth = DeviceAuth(device.token_hash, self._settings.heartbeat_interval or device.heartbeat_interval)
        with self._lock:
            if epoch == self._auth_epoch:  # no registration or admin change raced this read
                self._auth[device_id] = auth
        return auth

    def remember(self, device_id: str, token_hash: str | None, heartbeat_interval: float) -> None:
        """Hold the token a registration just committed (its first heartbeat then reads no database)."""
        with self._lock:
            self._auth_epoch += 1
            self._auth[device_id] = DeviceAuth(token_hash, self._settings.heartbeat_interval or heartbeat_interval)

    def invalidate(self, device_id: str) -> None:
        """Forget the device's token (after a committed change); the next heartbeat reads it again."""
        self.forget([device_id])

    def forget(self, device_ids: Iterable[str] | None) -> None:
        """Forget these devices' tokens (all when None: a replica's listener resyncs)."""
        with self._lock:
            self._auth_epoch += 1
            if device_ids is None:
                self._auth.clear()
            else:
                for device_id in device_ids:
                    self._auth.pop(device_id, None)

    @staticmethod
    def check_token(device_id: str, auth: DeviceAuth, token: str | None) -> None:
        if not token or not auth.token_hash or not hmac.compare_digest(hash_token(token), auth.token_hash):
            raise AuthError(f"invalid device token for '{device_id}'")

    # -- write-behind -----------------------------------------------------------------------------------
    def record(self, device_id: str, beat: Heartbeat, auth: DeviceAuth, now: datetime,
               peer_host: str | None = None) -> None:
        values = {
            "b_id": device_id,
            "last_heartbeat_at": now,
            "offline_after": now + timedelta(seconds=auth.heartbeat_interval * self._settings.offline_after_missed),
            "last_metrics": beat.metrics.model_dump(mode="json", exclude_defaults=True),
            "models": [m.model_dump(mode="json", exclude_none=True) for m in beat.models],
            "services": [_resolve_wildcard(s.model_dump(mode="json", exclude_none=True), peer_host)
                         for s in beat.services],
            "manifest_keys": beat.manifest_keys,
            "outbox": beat.outbox.model_dump(mode="json") if beat.outbox is not None else None,
            "beats": 1,
        }
        if beat.agent_version:
            values["agent_version"] = beat.agent_version
        with self._lock:
            previous = self._pending.get(device_id)
            if previous is not None:
                values["beats"] += previous["beats"]
                values.setdefault("agent_version", previous.get("agent_version"))
            self._pending[device_id] = values

    def flush(self) -> int:
        """Write every pending heartbeat in one transaction; returns how many devices were updated."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = [self._pending[key] for key in sorted(self._pending)], {}
            if not batch:
                return 0
            for values in batch:
                values.setdefault("agent_version", None)
            try:
                with self._sessions.begin() as session:
                    session.connection().execute(_UPDATE_HEARTBEAT, batch)
            except Exception:
                self._requeue(batch)
                raise
            return len(batch)

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        """Keep a failed batch for the next flush (a newer heartbeat of the same device wins, counts add up)."""
        with self._lock:
            for values in batch:
                newer = self._pending.get(values["b_id"])
                if newer is None:
                    self._pending[values["b_id"]] = values
                else:
                    newer["beats"] += values["beats"]
                    newer.setdefault("agent_version", values.get("agent_version"))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="heartbeat-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                self.flush()
            except Exception:  # keep ingesting; the next flush retries with newer data
                log.exception("heartbeat flush failed")


_WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]"}


def _resolve_wildcard(service: dict[str, Any], peer_host: str | None) -> dict[str, Any]:
    """A service listening on a wildcard address is reachable where the heartbeat came from."""
    parts = urlsplit(service["url"])
    if peer_host and parts.hostname is not None and (parts.hostname in _WILDCARD_HOSTS or
                                                     f"[{parts.hostname}]" in _WILDCARD_HOSTS):
        host = f"[{peer_host}]" if ":" in peer_host else peer_host
        netloc = f"{host}:{parts.port}" if parts.port else host
        service = {**service, "url": urlunsplit(parts._replace(netloc=netloc))}
    return service


# True when the batched heartbeat is newer than the row's (another replica may have written a newer one).
_NEWER = or_(Device.last_heartbeat_at.is_(None),
             Device.last_heartbeat_at < bindparam("last_heartbeat_at", type_=Device.last_heartbeat_at.type))


def _newest(column: Any, value: Any) -> ColumnElement[Any]:
    """``value`` when the batched heartbeat is the newer one, else the row keeps ``column``."""
    if isinstance(value, str):
        value = bindparam(value, type_=column.type)
    return case((_NEWER, value), else_=column)


_UPDATE_HEARTBEAT = (
    update(Device)
    .where(Device.device_id == bindparam("b_id"))
    .values(
        last_heartbeat_at=_newest(Device.last_heartbeat_at, "last_heartbeat_at"),
        offline_after=_newest(Device.offline_after, "offline_after"),
        last_metrics=_newest(Device.last_metrics, "last_metrics"),
        models=_newest(Device.models, "models"),
        services=_newest(Device.services, "services"),
        manifest_keys=_newest(Device.manifest_keys, "manifest_keys"),
        outbox=_newest(Device.outbox, "outbox"),
        agent_version=_newest(Device.agent_version, func.coalesce(bindparam("agent_version", type_=String(64)),
                                                                  Device.agent_version)),
        heartbeats_received=Device.heartbeats_received + bindparam("beats"),
    )
)

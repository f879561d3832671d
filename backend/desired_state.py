"""What the control plane wants a device to run, answered to each heartbeat (with its ETag).

The heartbeat path must stay well under a millisecond, so each device's desired models and its signed
manifest are cached in memory. A cache miss (first heartbeat after a start, or after an admin change on
this replica or, through :mod:`jetfleet.backend.cache_listener`, on another one dropped the entry) reads the
database once in a worker thread. Entries are re-signed (same serial,
new expiry) at half of the manifest lifetime, and re-signed with another key when the device's
reported trusted keys call for it (key rotation).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend import jobs_registry, model_registry
from jetfleet.backend.ingest import DeviceAuth
from jetfleet.backend.settings import BackendSettings
from jetfleet.backend.signing import Signer
from jetfleet.jobs import DesiredJob
from jetfleet.manifest import DesiredModel, ManifestPayload, sign_payload
from jetfleet.protocol import DeviceConfig, Heartbeat, HeartbeatResponse, OtaItem, SignedManifest

MAX_CACHED_ANSWERS = 8


@dataclass
class DeviceDesired:
    """One device's cached desired state and the manifests signed for it (by key id)."""

    device_id: str
    serial: int
    models: tuple[DesiredModel, ...]
    jobs: tuple[DesiredJob, ...] = ()
    signed: dict[str, tuple[SignedManifest, float]] = field(default_factory=dict)  # key id -> (manifest, refresh at)
    bodies: dict[tuple[object, ...], tuple[bytes, str]] = field(default_factory=dict)  # answer key -> (body, ETag)

    def artifact_allowed(self, sha256: str) -> bool:
        for model in self.models:
            golden = model.golden
            if sha256 == model.sha256 or (golden and sha256 in (golden.input.sha256, golden.output.sha256)):
                return True
        return False


class DesiredState:
    """Builds heartbeat answers from the cache; :meth:`load` fills it (blocking, run it in a thread)."""

    def __init__(self, settings: BackendSettings, sessions: sessionmaker[Session], signer: Signer | None) -> None:
        self.settings = settings
        self.signer = signer
        self._sessions = sessions
        self._cache: dict[str, DeviceDesired] = {}
        self._epoch = 0
        self._lock = threading.Lock()

    def cached(self, device_id: str) -> DeviceDesired | None:
        return self._cache.get(device_id)

    def load(self, device_id: str) -> DeviceDesired:
        """Read the device's desired models, jobs and serial in one consistent snapshot."""
        epoch = self._epoch
        now = datetime.now(timezone.utc)
        with self._sessions.begin() as session:
            _consistent_snapshot(session)
            serial = model_registry.serial_of(session, device_id, now)
            models = tuple(model_registry.desired_models(session, device_id))
            jobs = tuple(jobs_registry.jobs_by_device(session, [device_id]).get(device_id, ()))
        entry = DeviceDesired(device_id, serial, models, jobs)
        with self._lock:
            if epoch == self._epoch:  # no admin change raced this read: safe to cache
                self._cache[device_id] = entry
        return entry

    def preload(self, device_ids: list[str] | None = None) -> int:
        """Fill the cache for every device (or ``device_ids``) in bulk: at start, so that the first heartbeats
        after a restart of a large fleet cost no database reads, and after a rollout changed many devices."""
        epoch = self._epoch
        with self._sessions.begin() as session:
            _consistent_snapshot(session)
            desired = model_registry.all_desired(session, datetime.now(timezone.utc), device_ids)
            jobs = jobs_registry.jobs_by_device(session, device_ids)
        entries = {device_id: DeviceDesired(device_id, serial, tuple(models), tuple(jobs.get(device_id, ())))
                   for device_id, (serial, models) in desired.items()}
        with self._lock:
            if epoch == self._epoch:
                self._cache.update(entries)
        return len(entries)

    def invalidate(self, device_ids: Iterable[str] | None = None) -> None:
        """Drop cached entries (all when ``device_ids`` is None) after an admin change was committed."""
        with self._lock:
            self._epoch += 1
            if device_ids is None:
                self._cache.clear()
            else:
                for device_id in device_ids:
                    self._cache.pop(device_id, None)

    def answer(self, entry: DeviceDesired, auth: DeviceAuth, beat: Heartbeat) -> tuple[bytes, str]:
        """The heartbeat answer's JSON body and ETag; both are cached per distinct answer."""
        manifest = self._manifest(entry, beat.manifest_keys)
        serving = {m.name: m.serving_version for m in beat.models}
        key = (auth.heartbeat_interval, id(manifest), tuple(serving.get(m.name) for m in entry.models))
        cached = entry.bodies.get(key)
        if cached is not None:
            return cached
        config = DeviceConfig(heartbeat_interval=auth.heartbeat_interval,
                              offline_after_missed=self.settings.offline_after_missed)
        body = HeartbeatResponse(ota=pending_updates(entry.models, serving), config=config,
                                 manifest=manifest).model_dump_json().encode()
        if len(entry.bodies) >= MAX_CACHED_ANSWERS:
            entry.bodies.clear()
        entry.bodies[key] = (body, response_etag(body))
        return entry.bodies[key]

    def _manifest(self, entry: DeviceDesired, trusted: list[str]) -> SignedManifest | None:
        if self.signer is None:
            return None
        key, next_keys = self.signer.choose(trusted)
        signed = entry.signed.get(key.key_id)
        if signed is not None and time.time() < signed[1]:
            return signed[0]
        issued = datetime.now(timezone.utc).replace(microsecond=0)
        ttl = self.settings.manifest_ttl
        payload = ManifestPayload(device_id=entry.device_id, serial=entry.serial, issued_at=issued,
                                  expires_at=issued + timedelta(seconds=ttl), models=entry.models,
                                  jobs=entry.jobs, next_keys=next_keys)
        text, signature = sign_payload(payload, key.private)
        manifest = SignedManifest(payload=text, signature=signature, key_id=key.key_id)
        entry.signed[key.key_id] = (manifest, time.time() + ttl / 2)
        entry.bodies.clear()  # they were keyed by the replaced manifest's id()
        return manifest


def _consistent_snapshot(session: Session) -> None:
    """Read the serials and the deployments as of one moment (SQLite transactions already are)."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def pending_updates(models: Iterable[DesiredModel], serving: dict[str, int | None]) -> list[OtaItem]:
    return [OtaItem(model=m.name, version=m.version, sha256=m.sha256, size_bytes=m.size_bytes,
                    current_version=serving.get(m.name))
            for m in models if serving.get(m.name) != m.version]


def response_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

"""How one control-plane replica keeps in step with the others sharing its PostgreSQL database.

Three parts, switched on whenever the database is PostgreSQL (``BackendSettings.shared_database``):
committed changes NOTIFY the other replicas (:mod:`jetfleet.backend.invalidation`), a listener applies
theirs to this replica's caches (:mod:`jetfleet.backend.cache_listener`), and a lease elects the one
replica that drives rollouts, drift and retention (:mod:`jetfleet.backend.leadership`). On SQLite there
is one process: it always leads and nothing is sent or heard.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend import invalidation, replica_settings
from jetfleet.backend.cache_listener import CacheListener
from jetfleet.backend.desired_state import DesiredState
from jetfleet.backend.ingest import HeartbeatIngest
from jetfleet.backend.invalidation import ALL, Invalidation, Scope
from jetfleet.backend.leadership import LeaderLease, Leadership, SoleLeader
from jetfleet.backend.replica_settings import SettingsCheck
from jetfleet.backend.settings import BackendSettings

BULK_RELOAD_MIN = 32  # another replica's change to at least this many devices is reloaded in one query


class ReplicaStatus(BaseModel):
    """``GET /api/v1/status``: which replica answered, and whether it leads."""

    replica: str
    leader: bool
    database: str  # "postgresql" or "sqlite"
    shared_database: bool
    listening: bool  # this replica hears the others' invalidations (always false on SQLite)
    invalidations_received: int
    mismatched_settings: list[str] = []  # settings a live replica has otherwise (docs/ha.md)


@dataclass
class Replica:
    settings: BackendSettings
    leadership: Leadership
    listener: CacheListener | None
    settings_check: SettingsCheck | None = None

    def start_listening(self) -> None:
        """Before the caches are loaded, so that no change committed meanwhile goes unheard."""
        if self.listener is not None:
            self.listener.start()

    def stop(self) -> None:
        self.leadership.stop()
        if self.listener is not None:
            self.listener.stop()

    def status(self) -> ReplicaStatus:
        shared = self.settings.shared_database
        return ReplicaStatus(replica=self.leadership.replica, leader=self.leadership.is_leader(),
                             database="postgresql" if shared else "sqlite", shared_database=shared,
                             listening=self.listener is not None and self.listener.connected.is_set(),
                             invalidations_received=self.listener.received if self.listener else 0,
                             mismatched_settings=self.settings_check.mismatched() if self.settings_check else [])


def replica(settings: BackendSettings, sessions: sessionmaker[Session], desired: DesiredState,
            ingest: HeartbeatIngest) -> Replica:
    name = settings.replica_name
    if not settings.shared_database:
        return Replica(settings, SoleLeader(name), None)
    invalidation.install(sessions, name)
    replica_settings.record(sessions, settings)

    def resync() -> None:
        ingest.forget(None)
        desired.invalidate()
        ingest.preload()
        desired.preload()

    listener = CacheListener(settings.database_url, name, apply=lambda change: apply(change, desired, ingest),
                             resync=resync)
    lease = LeaderLease(settings.database_url, name, interval=settings.leader_check_interval)
    return Replica(settings, lease, listener, SettingsCheck(sessions, settings))


def apply(change: Invalidation, desired: DesiredState, ingest: HeartbeatIngest) -> None:
    """Drop what another replica's committed change made stale; reload a large change in bulk right away (a
    rollout wave, or "all"), as the changing replica does, instead of one read per device's next heartbeat."""
    if change.desired:
        ids = _ids(change.desired)
        desired.invalidate(ids)
        if ids is None or len(ids) >= BULK_RELOAD_MIN:
            desired.preload(None if ids is None else sorted(ids))
    if change.auth:
        ids = _ids(change.auth)
        ingest.forget(ids)
        if ids is None:
            ingest.preload()


def _ids(scope: Scope) -> frozenset[str] | None:
    return None if scope == ALL else scope  # type: ignore[return-value]

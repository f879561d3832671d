"""Settings the replicas sharing a database should agree on: recorded by each at start, compared on demand.

Devices and the CLI reach any replica, so a replica with another admin token, heartbeat interval or drift
setting gives them different answers. Each replica records what it was started with in
``control_plane_replicas`` (values in the clear, secrets as keyed digests with a salt kept in the database),
and compares itself with the replicas that are up now: those holding a lease session
(``application_name`` ``jetfleet-lease NAME``), so a replica gone for good does not count.

A difference is reported, not refused: during a rolling change of a setting the replicas differ by design.
It is logged at start (naming the setting and the replicas), listed by ``GET /api/v1/status``
(``mismatched_settings``) and counted by the ``jetfleet_control_plane_mismatched_settings`` gauge.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend.leadership import LEASE_PREFIX, lease_application_name
from jetfleet.backend.models import ControlPlaneValue, ReplicaRecord
from jetfleet.backend.replica_checks import claim
from jetfleet.backend.settings import BackendSettings

log = logging.getLogger("jetfleet.backend.replica_settings")
SALT = "settings_salt"
SECRET = ("admin_token", "provisioning_key", "webhook_secret", "drift_webhook")  # a webhook URL may hold a password
PLAIN = ("heartbeat_interval", "offline_after_missed", "manifest_ttl", "max_upload_bytes", "results_retention",
         "drift_interval", "drift_window", "drift_windows", "drift_min_windows", "drift_alpha",
         "drift_reference_rows", "drift_min_window_rows", "rollout_interval")
CACHE_SECONDS = 5.0


def fingerprint(settings: BackendSettings, salt: str) -> dict[str, str]:
    """What is compared: plain values as written, secrets as an HMAC under the database's salt."""
    found = {name: repr(getattr(settings, name)) for name in PLAIN}
    for name in SECRET:
        value = getattr(settings, name)
        found[name] = "unset" if value is None else \
            "hmac:" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:24]
    return found


def record(sessions: sessionmaker[Session], settings: BackendSettings) -> None:
    """At start: record this replica's settings, then log the ones that differ from live replicas'."""
    with sessions.begin() as session:
        salt = _salt(session)
        session.merge(ReplicaRecord(replica=settings.replica_name, settings=fingerprint(settings, salt),
                                    started_at=datetime.now(timezone.utc)))
    differing = mismatches(sessions, settings)
    for name, others in sorted(differing.items()):
        log.warning("replica %s: setting %s differs from the one of live replica(s) %s; devices and the CLI get "
                    "different answers from different replicas (expected only during a rolling change; "
                    "docs/ha.md)", settings.replica_name, name, ", ".join(others))


def mismatches(sessions: sessionmaker[Session], settings: BackendSettings) -> dict[str, list[str]]:
    """Each setting of this replica that a live replica has otherwise, with those replicas' names."""
    with sessions() as session:
        salt = _stored_salt(session)
        if salt is None:
            return {}
        live = {row[0] for row in session.execute(text(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE :prefix"),
            {"prefix": LEASE_PREFIX + "%"})}
        others = session.scalars(select(ReplicaRecord).where(ReplicaRecord.replica != settings.replica_name)).all()
    mine = fingerprint(settings, salt)
    differing: dict[str, list[str]] = {}
    for other in others:
        if lease_application_name(other.replica) not in live:
            continue
        for name, value in mine.items():
            if other.settings.get(name) != value:
                differing.setdefault(name, []).append(other.replica)
    return differing


def _stored_salt(session: Session) -> str | None:
    row = session.get(ControlPlaneValue, SALT)
    return row.value if row else None


def _salt(session: Session) -> str:
    row, _ = claim(session, SALT, secrets.token_hex(16))
    return row.value


class SettingsCheck:
    """``mismatches`` for this replica, re-read at most every few seconds (status requests, scrapes)."""

    def __init__(self, sessions: sessionmaker[Session], settings: BackendSettings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._cached: tuple[float, list[str]] | None = None

    def mismatched(self) -> list[str]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > CACHE_SECONDS:
            try:
                names = sorted(mismatches(self._sessions, self._settings))
            except Exception:  # the database is away: say nothing rather than fail a status request or a scrape
                log.debug("could not compare the replicas' settings", exc_info=True)
                names = self._cached[1] if self._cached else []
            self._cached = (now, names)
        return self._cached[1]


class SettingsCollector(Collector):
    """``jetfleet_control_plane_mismatched_settings``: how many of this replica's settings a live replica has
    otherwise (0 when they all agree)."""

    def __init__(self, replica: str, check: SettingsCheck) -> None:
        self._replica = replica
        self._check = check

    def collect(self) -> Iterable[Any]:
        gauge = GaugeMetricFamily("jetfleet_control_plane_mismatched_settings", "Settings of this control-plane "
                                  "replica that a live replica sharing its database has otherwise (docs/ha.md)",
                                  labels=["replica"])
        gauge.add_metric([self._replica], float(len(self._check.mismatched())))
        yield gauge

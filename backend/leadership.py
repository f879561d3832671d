"""Which control-plane replica drives the fleet-wide loops (rollouts, drift, retention, the drift webhook).

Replicas sharing a PostgreSQL database compete for one session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated session (:class:`LeaderLease`). The holder leads; the others
retry every ``interval`` seconds. The lock lives exactly as long as the holder's session: a replica that
exits, is SIGKILLed or loses its network has its session ended by the server, which releases the lock, and
a standby takes it at its next try. The holder checks its session every ``interval`` too and stops leading
the moment the check fails (it cannot know whether the server still counts it as the holder).

Fencing: a leader that lost its session to a network partition still believes it leads until its next
check. Each new leader bumps a counter (``leader_epoch`` in ``control_plane``) when it takes the lock, and
every transaction of the fleet-wide loops starts with :meth:`LeaderLease.fence`: it reads the counter
``FOR SHARE`` and refuses (:class:`NotLeader`, the transaction rolls back) unless it is the epoch this replica
took. The bump waits for the old leader's transaction in progress, so once the new leader has its epoch
nothing of the old one commits.

On SQLite one process owns the database: :class:`SoleLeader` always leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.orm import Session

from jetfleet.backend import pgconn
from jetfleet.errors import TemporaryError

log = logging.getLogger("jetfleet.backend.leadership")
LEADER_LOCK_KEY = int.from_bytes(b"jetfleet", "big") >> 1  # one fixed 63-bit advisory lock key
LEASE_PREFIX = "jetfleet-lease "
EPOCH = "leader_epoch"
_BUMP_EPOCH = ("INSERT INTO control_plane (name, value, updated_at) VALUES (%(name)s, '1', now()) "
               "ON CONFLICT (name) DO UPDATE SET value = (control_plane.value::bigint + 1)::text, updated_at = now() "
               "RETURNING value")


class NotLeader(TemporaryError):
    """This replica's lead ended (another replica took it): the transaction must not commit."""


def lease_application_name(replica: str) -> str:
    """The ``application_name`` of a replica's lease session (PostgreSQL keeps its first 63 bytes): while it
    is connected, the replica is up."""
    return f"{LEASE_PREFIX}{replica}"[:63]


class Leadership(Protocol):
    replica: str

    def is_leader(self) -> bool: ...

    def fence(self, session: Session) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SoleLeader:
    """The only control-plane process of its database (SQLite)."""

    def __init__(self, replica: str) -> None:
        self.replica = replica

    def is_leader(self) -> bool:
        return True

    def fence(self, session: Session) -> None:
        return None

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


class LeaderLease:
    """Holds or waits for the leader lock on a session of its own (one thread)."""

    def __init__(self, database_url: str, replica: str, *, interval: float = 1.0, key: int = LEADER_LOCK_KEY) -> None:
        self.replica = replica
        self._database_url = database_url
        self._interval = interval
        self._key = key
        self._leader = False
        self._epoch: str | None = None
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = pgconn.Backoff()

    def is_leader(self) -> bool:
        return self._leader

    def fence(self, session: Session) -> None:
        """First statement of a leader's transaction: ``NotLeader`` unless this replica's epoch is current."""
        epoch = self._epoch if self._leader else None
        current = session.execute(text("SELECT value FROM control_plane WHERE name = :name FOR SHARE"),
                                  {"name": EPOCH}).scalar()
        if epoch is None or current != epoch:
            raise NotLeader(f"replica {self.replica} no longer leads (leader epoch {current}, this replica's "
                            f"{epoch}): nothing of this round is written", delay=self._interval)

    def start(self) -> None:
        """Try once now (a single replica leads from its first second), then keep trying in a thread."""
        self.step()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Give the lead up (closing the session releases the lock at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + pgconn.CONNECT_TIMEOUT_S + 1)
        self._drop("this replica is stopping")

    def step(self) -> float:
        """One try (or one check, when leading); returns the seconds to wait before the next."""
        try:
            if self._conn is None:
                self._conn = pgconn.connect(self._database_url, lease_application_name(self.replica))
            if self._leader:
                self._conn.execute("SELECT 1")
            elif self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()[0]:
                self._epoch = str(self._conn.execute(_BUMP_EPOCH, {"name": EPOCH}).fetchone()[0])
                self._leader = True
                log.info("replica %s now leads (rollouts, drift, retention; leader epoch %s)", self.replica,
                         self._epoch)
            self._backoff.reset()
            return self._interval
        except Exception as exc:  # a lost session is a lost lock
            self._drop(f"its lease session failed: {exc}")
            return self._backoff.next()

    def _drop(self, why: str) -> None:
        if self._leader:
            log.warning("replica %s stops leading: %s", self.replica, why)
        self._leader = False
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken session: nothing left to release
                log.debug("closing the lease session failed", exc_info=True)

    def _run(self) -> None:
        delay = self._interval
        while not self._stop.wait(delay):
            delay = self.step()


class LeaderCollector(Collector):
    """``jetfleet_control_plane_leader`` 1 on the replica that drives the loops, 0 on standbys."""

    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("jetfleet_control_plane_leader", "1 when this control-plane replica drives "
                                  "rollouts, drift and retention (holds the leader lock), 0 on a standby",
                                  labels=["replica"])
        gauge.add_metric([self._leadership.replica], 1.0 if self._leadership.is_leader() else 0.0)
        yield gauge

"""Which control-plane replica drives the fleet-wide loops (rollouts, drift, retention, the drift webhook).

Replicas sharing a PostgreSQL database compete for one session-level advisory lock
(``pg_try_advisory_lock``) on a dedicated session (:class:`LeaderLease`). The holder leads; the others
retry every ``interval`` seconds. The lock lives exactly as long as the holder's session: a replica that
exits, is SIGKILLed or loses its network has its session ended by the server, which releases the lock, and
a standby takes it at its next try. The holder checks its session every ``interval`` too and stops leading
the moment the check fails (it cannot know whether the server still counts it as the holder).

On SQLite one process owns the database: :class:`SoleLeader` always leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jetfleet.backend import pgconn

log = logging.getLogger("jetfleet.backend.leadership")
LEADER_LOCK_KEY = int.from_bytes(b"jetfleet", "big") >> 1  # one fixed 63-bit advisory lock key
LEASE_PREFIX = "jetfleet-lease "


def lease_application_name(replica: str) -> str:
    """The ``application_name`` of a replica's lease session (PostgreSQL keeps its first 63 bytes): while it
    is connected, the replica is up."""
    return f"{LEASE_PREFIX}{replica}"[:63]


class Leadership(Protocol):
    replica: str

    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SoleLeader:
    """The only control-plane process of its database (SQLite)."""

    def __init__(self, replica: str) -> None:
        self.replica = replica

    def is_leader(self) -> bool:
        return True

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
        self._conn: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = pgconn.Backoff()

    def is_leader(self) -> bool:
        return self._leader

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
                self._leader = True
                log.info("replica %s now leads (rollouts, drift, retention)", self.replica)
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

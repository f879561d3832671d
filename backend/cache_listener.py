"""The replica's LISTEN side of cache invalidation (the sending side is :mod:`jetfleet.backend.invalidation`).

One thread holds one dedicated PostgreSQL session with ``LISTEN jetfleet_invalidate`` and applies each
notification from another replica to this replica's caches. Notifications are not queued for a session
that is gone, so after every reconnection (and after a first connection that came later than the caches'
load) the listener calls ``resync``, which drops and reloads every cached entry. Reconnection waits grow
from 0.2 s to 5 s; every wait is interrupted by :meth:`stop`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from jetfleet.backend import pgconn
from jetfleet.backend.invalidation import CHANNEL, Invalidation, decode

log = logging.getLogger("jetfleet.backend.cache_listener")
POLL_S = 0.5  # the longest a stop waits for the notification loop


class CacheListener:
    """Applies other replicas' invalidations (``apply``); ``resync`` after each (re)connection."""

    def __init__(self, database_url: str, replica: str, *, apply: Callable[[Invalidation], None],
                 resync: Callable[[], None]) -> None:
        self._database_url = database_url
        self._replica = replica
        self._apply = apply
        self._resync = resync
        self._stop = threading.Event()
        self.connected = threading.Event()  # set while LISTEN is active
        self.received = 0  # notifications applied (from other replicas)
        self.connections = 0
        self._thread: threading.Thread | None = None
        self._late = False  # the first LISTEN came after start() gave up waiting: the caches need a resync

    def start(self, wait: float = 10.0) -> bool:
        """Start listening; True when LISTEN was active within ``wait`` seconds (load the caches after this)."""
        self._thread = threading.Thread(target=self._run, name="cache-listener", daemon=True)
        self._thread.start()
        if self.connected.wait(wait):
            return True
        self._late = True
        log.warning("no invalidation listener after %.0f s; caches will be reloaded once it connects", wait)
        return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL_S + pgconn.CONNECT_TIMEOUT_S + 1)

    def handle(self, payload: str) -> None:
        """Apply one notification's payload (one's own are skipped: applied locally at commit)."""
        change = decode(payload)
        if change.origin == self._replica:
            return
        self.received += 1
        self._apply(change)

    def _run(self) -> None:
        backoff = pgconn.Backoff()
        while not self._stop.is_set():
            try:
                self._listen(backoff)
            except Exception as exc:  # any failure: reconnect, then resync
                delay = backoff.next()
                log.warning("invalidation listener lost its session (%s); reconnecting in %.1f s", exc, delay)
                self._stop.wait(delay)
            finally:
                self.connected.clear()

    def _listen(self, backoff: pgconn.Backoff) -> None:
        with pgconn.connect(self._database_url, f"jetfleet-listen {self._replica}") as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connections += 1
            if self.connections > 1 or self._late:  # notifications sent while no session listened are lost
                log.info("invalidation listener (re)connected: reloading every cached entry")
                self._resync()
            self.connected.set()
            backoff.reset()
            while not self._stop.is_set():
                for note in conn.notifies(timeout=POLL_S):
                    self.handle(note.payload)

"""Small pieces of run-time state shared between the agent's loops and its exporter."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class HeartbeatCounters:
    """Heartbeat outcomes, read by the Prometheus collector at scrape time (thread-safe)."""

    heartbeats_total: int = 0
    heartbeat_failures_total: int = 0
    last_heartbeat_timestamp_seconds: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record_success(self, now: float | None = None) -> None:
        with self._lock:
            self.heartbeats_total += 1
            self.last_heartbeat_timestamp_seconds = time.time() if now is None else now

    def record_failure(self) -> None:
        with self._lock:
            self.heartbeat_failures_total += 1

    def read(self) -> tuple[int, int, float | None]:
        with self._lock:
            return self.heartbeats_total, self.heartbeat_failures_total, self.last_heartbeat_timestamp_seconds

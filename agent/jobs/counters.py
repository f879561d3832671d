"""Job run counters, read by the Prometheus collector at scrape time (thread-safe, since the agent started)."""

from __future__ import annotations

import threading
from collections import Counter


class JobCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: Counter[tuple[str, str]] = Counter()  # (job, outcome) -> runs
        self._inputs: Counter[tuple[str, str]] = Counter()  # (job, outcome) -> input files
        self._waiting: dict[str, str] = {}  # job -> why a due run waits

    def run(self, job: str, outcome: str) -> None:
        with self._lock:
            self._runs[(job, outcome)] += 1

    def input(self, job: str, outcome: str) -> None:
        with self._lock:
            self._inputs[(job, outcome)] += 1

    def waiting(self, job: str, reason: str | None) -> None:
        with self._lock:
            if reason is None:
                self._waiting.pop(job, None)
            else:
                self._waiting[job] = reason

    def read(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int], dict[str, str]]:
        with self._lock:
            return dict(self._runs), dict(self._inputs), dict(self._waiting)

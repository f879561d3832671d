"""What ``GET /api/voice/status`` reports: command count, last command, latency percentiles."""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import Any


class ServiceStats:
    def __init__(self, window: int = 500) -> None:
        self.command_count = 0
        self.last_command: dict[str, Any] | None = None
        self._latencies_ms: deque[float] = deque(maxlen=window)

    def record(self, summary: dict[str, Any], total_ms: float) -> None:
        self.command_count += 1
        self.last_command = {**summary, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._latencies_ms.append(total_ms)

    def percentiles_ms(self) -> tuple[float | None, float | None]:
        samples = sorted(self._latencies_ms)
        if not samples:
            return None, None
        if len(samples) == 1:
            return round(samples[0], 1), round(samples[0], 1)
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return round(cuts[49], 1), round(cuts[94], 1)

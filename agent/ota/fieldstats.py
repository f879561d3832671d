"""Field signals of each serving model version, for rollout gates: error ratio and latency percentiles.

The model server counts its own requests, errors and latency (``jetfleet_model_inference_*`` on its
``/metrics``). The OTA loop scrapes the serving instance now and then (:meth:`FieldStats.sample`) and keeps
the samples of the last ``window`` seconds; the heartbeat reports the difference between the newest and the
oldest sample: errors / requests, and percentiles interpolated in the latency histogram (as Prometheus'
``histogram_quantile``). No requests in the window: no values (a gate has no evidence either way).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "jetfleet_model_inference"
QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}


@dataclass(frozen=True)
class Counts:
    requests: float = 0.0
    errors: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound s, cumulative count) ascending, +Inf last


def parse_counts(text: str) -> Counts:
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{PREFIX}_requests_total":
                requests += sample.value
            elif sample.name == f"{PREFIX}_errors_total":
                errors += sample.value
            elif sample.name == f"{PREFIX}_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Counts(requests, errors, tuple(sorted(buckets.items())))


def window_values(old: Counts, new: Counts) -> dict[str, float | None]:
    requests = new.requests - old.requests
    if requests <= 0:
        return {"error_ratio": None, **dict.fromkeys(QUANTILES)}
    values: dict[str, float | None] = {"error_ratio": min(1.0, max(0.0, (new.errors - old.errors) / requests))}
    before = dict(old.buckets)
    deltas = [(bound, count - before.get(bound, 0.0)) for bound, count in new.buckets]
    for name, q in QUANTILES.items():
        seconds = quantile(q, deltas)
        values[name] = None if seconds is None else round(seconds * 1000, 3)
    return values


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Linear interpolation inside the bucket holding rank q (the +Inf bucket answers its lower bound)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class FieldStats:
    """Samples per (model, version) over a sliding window; values for the heartbeat."""

    window: float
    min_interval: float = 1.0
    _samples: dict[tuple[str, int], deque[tuple[float, Counts]]] = field(default_factory=dict)

    def due(self, name: str, version: int, now: float | None = None) -> bool:
        samples = self._samples.get((name, version))
        now = time.monotonic() if now is None else now
        return not samples or now - samples[-1][0] >= self.min_interval

    def add(self, name: str, version: int, counts: Counts, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        samples = self._samples.setdefault((name, version), deque())
        samples.append((now, counts))
        while len(samples) > 2 and now - samples[1][0] >= self.window:
            samples.popleft()

    def values(self, name: str, version: int | None) -> dict[str, float | None]:
        samples = self._samples.get((name, version)) if version is not None else None
        if not samples or len(samples) < 2:
            return {}
        return window_values(samples[0][1], samples[-1][1])

    def keep_only(self, serving: set[tuple[str, int]]) -> None:
        for key in list(self._samples):
            if key not in serving:
                del self._samples[key]

"""Prometheus metrics of the model server, in a registry of its own.

Request counts, errors and latency are the server's own work, so they are instrumented directly;
the model's state is read from the host by a collector at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("model", "version")


class InferenceMetrics:
    """Per-request counters and the latency histogram, labelled with the served model and version."""

    def __init__(self, registry: CollectorRegistry, model: str, version: str) -> None:
        self._labels = (model, version)
        self.requests = Counter("jetfleet_model_inference_requests", "Inference requests received",
                                LABELS, registry=registry)
        self.errors = Counter("jetfleet_model_inference_errors", "Inference requests that failed, by HTTP status",
                              (*LABELS, "status"), registry=registry)
        self.latency = Histogram("jetfleet_model_inference_duration_seconds",
                                 "Time to answer a successful inference request (decode, infer, encode)",
                                 LABELS, buckets=LATENCY_BUCKETS, registry=registry)

    def success(self, seconds: float) -> None:
        self.requests.labels(*self._labels).inc()
        self.latency.labels(*self._labels).observe(seconds)

    def failure(self, status: int) -> None:
        self.requests.labels(*self._labels).inc()
        self.errors.labels(*self._labels, str(status)).inc()


class ModelState(Protocol):
    name: str
    version: str

    def state_facts(self) -> tuple[bool, dict[str, str], float | None]:
        """(ready, info labels, load seconds or None)."""


class ModelStateCollector(Collector):
    """``jetfleet_model_ready``, ``jetfleet_model_info`` and the load time, read from the host per scrape."""

    def __init__(self, host: ModelState) -> None:
        self._host = host

    def collect(self) -> Iterator[Metric]:
        ready, info, load_seconds = self._host.state_facts()
        labels = [self._host.name, self._host.version]
        ready_family = GaugeMetricFamily("jetfleet_model_ready", "1 when the model is loaded and warmed up",
                                         labels=list(LABELS))
        ready_family.add_metric(labels, 1.0 if ready else 0.0)
        yield ready_family
        if info:
            info_family = GaugeMetricFamily("jetfleet_model_info", "The served model's framework and backend",
                                            labels=[*LABELS, *info])
            info_family.add_metric([*labels, *info.values()], 1.0)
            yield info_family
        if load_seconds is not None:
            load = GaugeMetricFamily("jetfleet_model_load_duration_seconds", "Time to load and warm up the model",
                                     labels=list(LABELS))
            load.add_metric(labels, load_seconds)
            yield load

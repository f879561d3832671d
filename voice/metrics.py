"""Prometheus metrics of the voice server, in a registry of its own.

The server's own work (requests, latencies, commands, robot calls) is instrumented directly; state that
lives elsewhere (queue, model, robot link) is read by a collector at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class LiveState:
    """A snapshot of state owned by other objects, taken at scrape time."""

    in_flight: int
    queued: int
    queue_capacity: int
    model_loaded: bool
    robot_connected: bool
    info: dict[str, str]


class _StateCollector(Collector):
    def __init__(self, snapshot: Callable[[], LiveState]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        state = self._snapshot()
        gauges = (
            ("jetfleet_voice_in_flight_requests", "Transcriptions running now", state.in_flight),
            ("jetfleet_voice_queued_requests", "Transcriptions waiting for the model", state.queued),
            ("jetfleet_voice_queue_capacity_requests", "Transcriptions admitted at most (running + queued)",
             state.queue_capacity),
            ("jetfleet_voice_model_loaded", "1 when the speech model is loaded", int(state.model_loaded)),
            ("jetfleet_voice_robot_connected", "1 when the robot answered recently", int(state.robot_connected)),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)
        info = InfoMetricFamily("jetfleet_voice_model", "Speech model, backend and language of this server")
        info.add_metric([], state.info)
        yield info


class VoiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("jetfleet_voice_requests", "HTTP requests answered", ["endpoint", "code"],
                                registry=self.registry)
        self.request_seconds = Histogram("jetfleet_voice_request_duration_seconds",
                                         "Time to answer a request, queueing included", ["endpoint"],
                                         buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.stt_seconds = Histogram("jetfleet_voice_stt_duration_seconds",
                                     "Speech-to-text time per clip (decoding and safety check)",
                                     buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.audio_seconds = Counter("jetfleet_voice_audio_seconds", "Seconds of audio transcribed",
                                     registry=self.registry)
        self.commands = Counter("jetfleet_voice_commands", "Commands handled, by action and outcome",
                                ["action", "status"], registry=self.registry)
        self.robot_calls = Counter("jetfleet_voice_robot_calls", "SDK calls to the robot, by method and code",
                                   ["method", "code"], registry=self.registry)
        self.robot_call_seconds = Histogram("jetfleet_voice_robot_call_duration_seconds",
                                            "Time of one SDK call to the robot", ["method"],
                                            buckets=_LATENCY_BUCKETS, registry=self.registry)

    def watch(self, snapshot: Callable[[], LiveState]) -> None:
        self.registry.register(_StateCollector(snapshot))

    def observe_robot_call(self, method: str, code: int, seconds: float) -> None:
        self.robot_calls.labels(method, str(code)).inc()
        self.robot_call_seconds.labels(method).observe(seconds)

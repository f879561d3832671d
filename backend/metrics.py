"""The control plane's own /metrics: its work (counters) and the fleet's state (read at scrape time)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend.models import Device
from jetfleet.jobs import ResultsAck


class BackendCounters:
    """Direct instrumentation of the backend's own work."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._heartbeats = Counter("jetfleet_backend_heartbeats_received", "Heartbeats accepted",
                                   registry=registry)
        self._registrations = Counter("jetfleet_backend_registrations", "Registrations accepted",
                                      registry=registry)
        self._items = Counter("jetfleet_backend_results_items", "Job results and drift sketches received from "
                              "devices, by kind and outcome (accepted = new, duplicate = a redelivery)",
                              ["kind", "outcome"], registry=registry)

    def heartbeat(self) -> None:
        self._heartbeats.inc()

    def registration(self) -> None:
        self._registrations.inc()

    def results(self, ack: ResultsAck) -> None:
        for kind, accepted, duplicate in (("result", ack.results_accepted, ack.results_duplicate),
                                          ("sketch", ack.sketches_accepted, ack.sketches_duplicate)):
            self._items.labels(kind, "accepted").inc(accepted)
            self._items.labels(kind, "duplicate").inc(duplicate)


class FleetCollector(Collector):
    """Devices online/offline, counted in the database when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session], before_read: Callable[[], object] = lambda: None) -> None:
        self._sessions = sessions
        self._before_read = before_read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        self._before_read()
        now = datetime.now(timezone.utc)
        with self._sessions() as session:
            total = session.scalar(select(func.count()).select_from(Device)) or 0
            online = session.scalar(select(func.count()).select_from(Device).where(Device.offline_after >= now)) or 0
        devices = GaugeMetricFamily("jetfleet_backend_devices", "Registered devices by status", labels=["status"])
        devices.add_metric(["online"], online)
        devices.add_metric(["offline"], total - online)
        yield devices

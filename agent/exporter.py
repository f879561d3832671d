"""The agent's Prometheus exporter: one custom collector that takes a metrics snapshot at scrape time.

Every metric is listed in docs/metrics.md. Names carry their unit; a value nobody measured is left out
(no series) rather than exported as 0, so plain x86 without a GPU simply has no GPU series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jetfleet.agent.jobs.counters import JobCounters
from jetfleet.agent.metrics import MetricsCollector, MetricsSnapshot
from jetfleet.agent.state import HeartbeatCounters
from jetfleet.errors import ConfigError
from jetfleet.jobs import OutboxStatus
from jetfleet.protocol import HardwareInfo

PREFIX = "jetfleet_"
_UNITS = ("bytes", "seconds", "celsius", "watts", "hertz", "ratio", "volts", "amperes", "joules")
Row = tuple[Sequence[str], float | None]


def gauge(name: str, doc: str, rows: Iterable[Row], labels: Sequence[str] = ()) -> Metric | None:
    """A gauge family with the rows whose value is known, or ``None`` when there is none."""
    family = GaugeMetricFamily(PREFIX + name, doc, labels=list(labels), unit=_unit(name))
    return _filled(family, rows)


def counter(name: str, doc: str, rows: Iterable[Row], labels: Sequence[str] = ()) -> Metric | None:
    base = name.removesuffix("_total")
    family = CounterMetricFamily(PREFIX + base, doc, labels=list(labels), unit=_unit(base))
    return _filled(family, rows)


def _unit(name: str) -> str:
    return next((unit for unit in _UNITS if name.endswith("_" + unit)), "")


def _filled(family: GaugeMetricFamily | CounterMetricFamily, rows: Iterable[Row]) -> Metric | None:
    for label_values, value in rows:
        if value is not None:
            family.add_metric(list(label_values), float(value))
    return family if family.samples else None


def one(value: float | None) -> list[Row]:
    return [((), value)]


class SnapshotCollector(Collector):
    def __init__(self, collector: MetricsCollector, *, hardware: HardwareInfo, device_id: str,
                 counters: HeartbeatCounters) -> None:
        self.collector = collector
        self.hardware = hardware
        self.device_id = device_id
        self.counters = counters

    def describe(self) -> Iterable[Metric]:
        return []  # no snapshot at registration time

    def collect(self) -> Iterable[Metric]:
        snapshot = self.collector.snapshot()
        families = [*self._identity(snapshot), *_system(snapshot), *_gpus(snapshot), *_thermal_power(snapshot),
                    *self._heartbeats()]
        return [family for family in families if family is not None]

    def _identity(self, snap: MetricsSnapshot) -> Iterator[Metric | None]:
        hw = self.hardware
        info = {"device_id": self.device_id, "platform": hw.platform, "arch": hw.arch, "model": hw.model,
                "module": hw.module, "soc": hw.soc, "l4t": hw.l4t, "jetpack": hw.jetpack, "cuda": hw.cuda,
                "tensorrt": hw.tensorrt, "kernel": hw.kernel}
        yield gauge("device_info", "Device identity (value 1).", [([v or "" for v in info.values()], 1)], list(info))
        if snap.power_mode_id is not None:
            yield gauge("power_mode_info", "nvpmodel power mode (value 1).",
                        [((snap.power_mode_name or "", snap.power_mode_id), 1)], ("mode", "id"))
        sources = sorted(snap.sources.items())
        yield gauge("collector_up", "Whether a metrics source answered the last snapshot (1) or not (0).",
                    [((name, ), 1 if status.up else 0) for name, status in sources], ("source",))
        yield counter("collector_errors_total", "Failed reads per metrics source.",
                      [((name, ), status.errors_total) for name, status in sources], ("source",))
        yield gauge("collector_last_success_timestamp_seconds", "Last successful read per metrics source.",
                    [((name, ), status.last_success_timestamp_seconds) for name, status in sources], ("source",))
        yield gauge("uptime_seconds", "Seconds since the host booted.", one(snap.uptime_seconds))

    def _heartbeats(self) -> Iterator[Metric | None]:
        sent, failed, last = self.counters.read()
        yield counter("heartbeats_total", "Heartbeats the control plane accepted.", one(sent))
        yield counter("heartbeat_failures_total", "Heartbeats that failed.", one(failed))
        yield gauge("last_heartbeat_timestamp_seconds", "Unix time of the last accepted heartbeat (0 = never).",
                    one(last or 0.0))


def _system(snap: MetricsSnapshot) -> Iterator[Metric | None]:
    cores = [((str(core.index),), core) for core in snap.cpu_cores]
    yield gauge("cpu_utilization_ratio", "Busy share of all CPUs (0..1).", one(snap.cpu_utilization_ratio))
    yield gauge("cpu_core_utilization_ratio", "Busy share per CPU core (0..1).",
                [(cpu, core.utilization_ratio) for cpu, core in cores], ("cpu",))
    yield gauge("cpu_online", "Whether a CPU core is online (1) or powered down (0).",
                [(cpu, 1 if core.online else 0) for cpu, core in cores], ("cpu",))
    yield gauge("cpu_frequency_hertz", "Current CPU core frequency.",
                [(cpu, core.frequency_hertz) for cpu, core in cores], ("cpu",))
    yield gauge("memory_total_bytes", "Total RAM.", one(snap.memory_total_bytes))
    yield gauge("memory_used_bytes", "RAM in use (total - available).", one(snap.memory_used_bytes))
    yield gauge("memory_available_bytes", "RAM available for new work.", one(snap.memory_available_bytes))
    yield gauge("swap_total_bytes", "Total swap.", one(snap.swap_total_bytes))
    yield gauge("swap_used_bytes", "Swap in use.", one(snap.swap_used_bytes))
    disks = [((disk.mountpoint,), disk) for disk in snap.disks]
    yield gauge("disk_total_bytes", "Filesystem size.", [(m, d.total_bytes) for m, d in disks], ("mountpoint",))
    yield gauge("disk_used_bytes", "Filesystem space used.", [(m, d.used_bytes) for m, d in disks], ("mountpoint",))
    yield gauge("disk_free_bytes", "Filesystem space available to unprivileged users.",
                [(m, d.free_bytes) for m, d in disks], ("mountpoint",))


def _gpus(snap: MetricsSnapshot) -> Iterator[Metric | None]:
    gpus = [((gpu.index,), gpu) for gpu in snap.gpus]
    yield gauge("gpu_count", "Number of GPUs seen.", one(len(snap.gpus)))
    yield gauge("gpu_info", "GPU name and type (value 1).",
                [((gpu.index, gpu.name, gpu.type), 1) for gpu in snap.gpus], ("gpu", "name", "type"))
    yield gauge("gpu_utilization_ratio", "GPU busy share (0..1).",
                [(g, gpu.utilization_ratio) for g, gpu in gpus], ("gpu",))
    yield gauge("gpu_frequency_hertz", "GPU clock.", [(g, gpu.frequency_hertz) for g, gpu in gpus], ("gpu",))
    yield gauge("gpu_memory_used_bytes", "Memory used on a discrete GPU.",
                [(g, gpu.memory_used_bytes) for g, gpu in gpus], ("gpu",))
    yield gauge("gpu_memory_total_bytes", "Memory of a discrete GPU.",
                [(g, gpu.memory_total_bytes) for g, gpu in gpus], ("gpu",))
    yield gauge("gpu_temperature_celsius", "Discrete GPU temperature (Jetson: temperature_celsius{sensor=\"gpu\"}).",
                [(g, gpu.temperature_celsius) for g, gpu in gpus], ("gpu",))
    yield gauge("gpu_power_watts", "Discrete GPU power draw.", [(g, gpu.power_watts) for g, gpu in gpus], ("gpu",))
    yield counter("gpu_energy_joules_total", "Energy used by a discrete GPU since its driver loaded.",
                  [(g, gpu.energy_joules_total) for g, gpu in gpus], ("gpu",))
    yield gauge("emc_utilization_ratio", "Jetson external memory controller load (0..1).",
                one(snap.emc_utilization_ratio))
    yield gauge("emc_frequency_hertz", "Jetson external memory controller clock.", one(snap.emc_frequency_hertz))


def _thermal_power(snap: MetricsSnapshot) -> Iterator[Metric | None]:
    rails = [((name,), rail) for name, rail in sorted(snap.power_rails.items())]
    yield gauge("temperature_celsius", "Temperature per sensor (offline sensors left out).",
                [((name,), value) for name, value in sorted(snap.temperatures_celsius.items())], ("sensor",))
    yield gauge("power_watts", "Instantaneous power per rail.", [(r, rail.current_watts) for r, rail in rails],
                ("rail",))
    yield gauge("power_average_watts", "Average power per rail since tegrastats/jtop started.",
                [(r, rail.average_watts) for r, rail in rails], ("rail",))
    yield gauge("rail_voltage_volts", "Rail voltage (INA3221).", [(r, rail.voltage_volts) for r, rail in rails],
                ("rail",))
    yield gauge("rail_current_amperes", "Rail current (INA3221).", [(r, rail.current_amperes) for r, rail in rails],
                ("rail",))
    yield gauge("board_power_watts", "Board power: the input rail (method=rail) or the sum of all rails (method=sum).",
                [((snap.board_power_method or "",), snap.board_power_watts)], ("method",))


class JobsCollector(Collector):
    """The results outbox and job runs, read at scrape time."""

    def __init__(self, outbox: Callable[[], tuple[OutboxStatus, int] | None], counters: JobCounters) -> None:
        self.outbox = outbox  # (status, items quarantined), None when the device never had a job
        self.counters = counters

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        outbox = self.outbox()  # None: this device never had a job (no outbox, no series)
        runs, inputs, waiting = self.counters.read()
        families = [
            *(_outbox(*outbox) if outbox is not None else ()),
            counter("job_runs_total", "Job runs that ended, by outcome (completed, incomplete, crashed).",
                    [((job, outcome), n) for (job, outcome), n in sorted(runs.items())], ("job", "outcome")),
            counter("job_inputs_total", "Input files run by jobs, by outcome (ok, error).",
                    [((job, outcome), n) for (job, outcome), n in sorted(inputs.items())], ("job", "outcome")),
            gauge("job_waiting", "A due job that waits (value 1), with the reason (e.g. MODEL_NOT_SERVING).",
                  [((job, reason), 1) for job, reason in sorted(waiting.items())], ("job", "reason")),
        ]
        return [family for family in families if family is not None]


def _outbox(status: OutboxStatus, quarantined: int) -> Iterator[Metric | None]:
    yield gauge("outbox_pending", "Results and sketch windows waiting in the outbox for upload.", one(status.pending))
    yield gauge("outbox_oldest_age_seconds", "Age of the oldest item waiting in the outbox (0 = empty).",
                one(status.oldest_age_seconds or 0.0))
    yield counter("outbox_dropped_total", "Raw results dropped because the outbox was full (policy drop_oldest).",
                  one(status.dropped_total))
    yield counter("outbox_upload_failures_total", "Failed result uploads (each is retried).",
                  one(status.upload_failures_total))
    yield counter("outbox_quarantined_total", "Items the control plane refused with a 4xx, kept aside (quarantine).",
                  one(quarantined))


def build_registry(collector: MetricsCollector, *, hardware: HardwareInfo, device_id: str,
                   counters: HeartbeatCounters, extra: Sequence[Collector] = ()) -> CollectorRegistry:
    """A private registry with the snapshot collector, ``extra`` collectors and the process's own CPU/RSS."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(collector, hardware=hardware, device_id=device_id, counters=counters))
    for extra_collector in extra:
        registry.register(extra_collector)
    ProcessCollector(registry=registry)
    return registry


class MetricsServer:
    """prometheus_client's threaded HTTP server for one registry; ``close()`` stops it and frees the port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` (port 0 picks a free one: read ``.port``)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                          key="metrics_port") from exc
    return MetricsServer(server, thread)

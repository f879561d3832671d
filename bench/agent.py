"""``jetfleet bench agent``: the agent's footprint (RSS, CPU) over a run, and its heartbeat size."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv, wait_until
from jetfleet.errors import PermanentError


@dataclass(frozen=True)
class AgentFootprint:
    heartbeat_interval_s: float
    duration_s: float
    heartbeats: int
    rss_max_mb: float
    rss_mean_mb: float
    cpu_percent_of_one_core: float
    cpu_ms_per_heartbeat: float | None
    heartbeat_request_bytes: int


def heartbeat_request_bytes(host_root: Path) -> int:
    """Size of the JSON body the agent would send now, built with the agent's own code."""
    import jetfleet
    from jetfleet.agent.metrics.collector import MetricsCollector
    from jetfleet.protocol import Heartbeat

    with MetricsCollector.detect(host_root=host_root) as collector:
        collector.snapshot()
        time.sleep(0.5)  # CPU utilisation needs two samples
        beat = Heartbeat(metrics=collector.snapshot().to_heartbeat(), agent_version=jetfleet.__version__)
    return len(beat.model_dump_json(exclude_none=True, exclude_defaults=True).encode())


def measure(*, interval: float, duration: float, host_root: Path) -> AgentFootprint:
    from jetfleet.bench.backend import local_backend

    with local_backend() as (url, _backend), tempfile.TemporaryDirectory(prefix="jetfleet-agent-bench-") as tmp:
        config = _write_config(Path(tmp), url, interval, host_root)
        agent = ManagedProcess(jetfleet_argv("agent", "run", "--config", str(config)), Path(tmp) / "stdout.log")
        try:
            process = psutil.Process(agent.pid)
            metrics_url = f"http://127.0.0.1:{json.loads(config.read_text())['metrics_port']}/metrics"
            _wait_first_heartbeat(metrics_url, agent)
            return _sample(process, metrics_url, interval, duration, host_root)
        finally:
            agent.stop()


def _write_config(tmp: Path, url: str, interval: float, host_root: Path) -> Path:
    port = free_port()
    config = {"backend_url": url, "device_id": "bench-agent", "device_name": "bench-agent",
              "heartbeat_interval": interval, "state_dir": str(tmp / "state"), "models_dir": str(tmp / "models"),
              "log_file": str(tmp / "agent.log"), "metrics_port": port, "metrics_host": "127.0.0.1",
              "host_root": str(host_root)}
    path = tmp / "config.json"
    path.write_text(json.dumps(config))
    return path


def _heartbeats(metrics_url: str) -> int:
    for line in httpx.get(metrics_url, timeout=5).text.splitlines():
        if line.startswith("jetfleet_heartbeats_total "):
            return int(float(line.split()[1]))
    return 0


def _wait_first_heartbeat(metrics_url: str, agent: ManagedProcess) -> None:
    def first_heartbeat() -> bool:
        if not agent.alive():
            raise PermanentError(f"the agent exited with {agent.returncode}")
        return _heartbeats(metrics_url) >= 1

    wait_until(first_heartbeat, 60, interval=0.2, what="the agent's first heartbeat")


def _sample(process: psutil.Process, metrics_url: str, interval: float, duration: float,
            host_root: Path) -> AgentFootprint:
    beats_before = _heartbeats(metrics_url)
    cpu_before = sum(process.cpu_times()[:2])
    rss: list[int] = []
    began = time.monotonic()
    while time.monotonic() - began < duration:
        rss.append(process.memory_info().rss)
        time.sleep(0.5)
    elapsed = time.monotonic() - began
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    beats = _heartbeats(metrics_url) - beats_before
    return AgentFootprint(
        heartbeat_interval_s=interval, duration_s=round(elapsed, 1), heartbeats=beats,
        rss_max_mb=round(max(rss) / 2**20, 1), rss_mean_mb=round(sum(rss) / len(rss) / 2**20, 1),
        cpu_percent_of_one_core=round(cpu / elapsed * 100, 3),
        cpu_ms_per_heartbeat=round(cpu / beats * 1000, 2) if beats else None,
        heartbeat_request_bytes=heartbeat_request_bytes(host_root),
    )


def footprint_dict(result: AgentFootprint) -> dict[str, Any]:
    return asdict(result)

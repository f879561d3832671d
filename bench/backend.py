"""``jetfleet bench backend``: simulated devices heartbeating against a real control plane.

The load generator uses aiohttp (a Python httpx client costs more CPU per request than the server does,
and would measure itself). The server's CPU seconds per heartbeat are reported too: unlike requests per
second, that figure does not depend on what else the machine is doing.

``replicas`` > 1 starts that many control-plane replicas on one PostgreSQL database (and one data dir) and
splits the simulated devices between them, device i talking to replica i mod N, for registration and
heartbeats alike; no balancer sits in between (it would cost CPU of its own on the same cores). The CPU
and RSS figures are then the replicas' sums.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv
from jetfleet.errors import PermanentError

SAMPLE_METRICS = {
    "cpu_utilization_ratio": 0.23, "memory_used_bytes": 4321 * 1048576, "memory_total_bytes": 62801 * 1048576,
    "swap_used_bytes": 19 * 1048576, "swap_total_bytes": 31400 * 1048576, "disk_used_bytes": 21_474_836_480,
    "disk_total_bytes": 62_277_025_792, "gpu_utilization_ratio": 0.12, "uptime_seconds": 86400.0,
    "temperatures_celsius": {"cpu": 44.56, "soc0": 41.09, "soc1": 41.25, "soc2": 40.09, "tj": 44.34, "gpu": 42.1},
    "power_watts": {"VDD_GPU_SOC": 2.34, "VDD_CPU_CV": 0.39, "VIN_SYS_5V0": 4.02},
}
SAMPLE_MODELS = [{"name": "yolov8n", "serving_version": 3, "last_known_good": 3, "state": "committed",
                  "endpoint": "http://10.0.0.21:9000"}]


@dataclass(frozen=True)
class BenchResult:
    database: str
    replicas: int
    devices: int
    concurrency: int
    registrations_per_s: float
    restart_to_healthy_s: float | None
    duration_s: float
    heartbeats: int
    errors: int
    heartbeats_per_s: float
    p50_ms: float
    p99_ms: float
    request_bytes: int
    server_cpu_ms_per_heartbeat: float | None
    server_rss_mb: float | None


def heartbeat_body() -> bytes:
    return json.dumps({"metrics": SAMPLE_METRICS, "models": SAMPLE_MODELS, "agent_version": "0.1.0"}).encode()


async def _register(urls: str | list[str], devices: int, concurrency: int) -> list[str]:
    """Register ``devices`` simulated devices, device i with ``urls[i % len(urls)]``; returns 'url\\nid\\ntoken'."""
    import aiohttp

    urls = [urls] if isinstance(urls, str) else urls
    hardware = {"platform": "jetson", "arch": "aarch64", "module": "AGX Orin 32GB", "l4t": "36.4.4"}
    prefix = secrets.token_hex(3)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, i: int) -> str:
        body = {"device_id": f"bench-{prefix}-{i}", "device_name": f"bench-{i}", "hardware": hardware}
        url = urls[i % len(urls)]
        async with semaphore, session.post(f"{url}/api/v1/edge-devices/register", json=body) as response:
            if response.status != 201:
                raise PermanentError(f"registration failed: {response.status} {await response.text()}")
            return f"{url}\nbench-{prefix}-{i}\n{(await response.json())['device_token']}"

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(session, i) for i in range(devices)))


async def _heartbeat_load(creds: list[str], concurrency: int, duration: float) -> tuple[list[float], int]:
    import aiohttp

    body = heartbeat_body()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession, start: int) -> None:
        nonlocal errors
        index = start
        while time.perf_counter() < deadline:
            url, device_id, token = creds[index % len(creds)].split("\n")
            index += concurrency
            began = time.perf_counter()
            async with session.post(f"{url}/api/v1/edge-devices/{device_id}/heartbeat", data=body,
                                    headers={"Authorization": f"Bearer {token}",
                                             "Content-Type": "application/json"}) as response:
                await response.read()
                if response.status == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))
    return latencies, errors


def run_bench(*, devices: int, duration: float, concurrency: int, database_url: str | None,
              backend_url: str | None, restart: bool = False, replicas: int = 1) -> BenchResult:
    _check_options(database_url, backend_url, restart, replicas)
    with _backends(database_url, backend_url, replicas) as (urls, servers):
        began = time.perf_counter()
        creds = asyncio.run(_register(urls, devices, min(concurrency, 64)))
        registrations_per_s = devices / (time.perf_counter() - began)
        startup_s = servers[0].restart() if restart and servers else None
        cpu_before = sum(server.cpu_seconds() for server in servers)
        began = time.perf_counter()
        latencies, errors = asyncio.run(_heartbeat_load(creds, concurrency, duration))
        elapsed = time.perf_counter() - began
        cpu_used = sum(server.cpu_seconds() for server in servers) - cpu_before if servers else None
        rss_mb = sum(server.rss_mb() for server in servers) if servers else None
    latencies.sort()
    count = len(latencies)
    return BenchResult(
        database=_database_kind(database_url, backend_url), replicas=replicas, devices=devices,
        concurrency=concurrency,
        registrations_per_s=round(registrations_per_s, 1),
        restart_to_healthy_s=round(startup_s, 2) if startup_s is not None else None,
        duration_s=round(elapsed, 2), heartbeats=count, errors=errors,
        heartbeats_per_s=round(count / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 2) if latencies else float("nan"),
        p99_ms=round(latencies[int(count * 0.99) - 1] * 1000, 2) if latencies else float("nan"),
        request_bytes=len(heartbeat_body()),
        server_cpu_ms_per_heartbeat=round(cpu_used / count * 1000, 3) if cpu_used is not None and count else None,
        server_rss_mb=round(rss_mb, 1) if rss_mb is not None else None,
    )


def _database_kind(database_url: str | None, backend_url: str | None) -> str:
    if backend_url:
        return "external"
    return "postgresql" if database_url and database_url.startswith("postgresql") else "sqlite"


def _check_options(database_url: str | None, backend_url: str | None, restart: bool, replicas: int) -> None:
    if restart and backend_url:
        raise PermanentError("--restart needs a control plane the bench starts itself (drop --backend-url)")
    if replicas > 1 and (backend_url or restart):
        raise PermanentError("--replicas starts the replicas itself: drop --backend-url and --restart")
    if replicas > 1 and not (database_url or "").startswith("postgresql"):
        raise PermanentError("--replicas needs --database-url postgresql+psycopg://... (replicas share PostgreSQL)")


@contextmanager
def _backends(database_url: str | None, backend_url: str | None, replicas: int
              ) -> Iterator[tuple[list[str], list[LocalBackend]]]:
    if backend_url:
        yield [backend_url.rstrip("/")], []
        return
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jetfleet-bench-data-")))
        started = [stack.enter_context(local_backend(database_url, ("--replica-name", f"bench-{i}"), data_dir))
                   for i in range(replicas)]
        yield [url for url, _ in started], [server for _, server in started]


class LocalBackend:
    """A control plane subprocess on a fixed loopback port; :meth:`restart` keeps its database."""

    def __init__(self, argv: list[str], url: str, log_path: Path) -> None:
        self.argv, self.url, self.log_path = argv, url, log_path
        self.admin_token = ""
        self._proc: ManagedProcess | None = None

    def start(self) -> None:
        self._proc = ManagedProcess(self.argv, self.log_path)
        self._proc.wait_http(self.url + "/health", timeout=120)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self) -> float:
        """Stop and start again; returns the seconds from the new start to a healthy answer."""
        self.stop()
        began = time.perf_counter()
        self.start()
        return time.perf_counter() - began

    def cpu_seconds(self) -> float:
        times = self._process().cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        return float(self._process().memory_info().rss) / 1e6

    def _process(self) -> psutil.Process:
        assert self._proc is not None, "the control plane is not running"
        return psutil.Process(self._proc.pid)


@contextmanager
def local_backend(database_url: str | None = None, extra_args: tuple[str, ...] = (), data_dir: Path | None = None,
                  ) -> Iterator[tuple[str, LocalBackend]]:
    """A control plane subprocess on a free loopback port (fresh SQLite unless ``database_url``; a data dir of
    its own unless ``data_dir``, which replicas of one database share)."""
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-") as tmp:
        url_db = database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        token = secrets.token_urlsafe(16)
        argv = jetfleet_argv("backend", "serve", "--host", "127.0.0.1", "--port", str(port), "--database-url", url_db,
                             "--admin-token", token, "--log-level", "warning",
                             "--data-dir", str(data_dir or Path(tmp) / "data"), *extra_args)
        server = LocalBackend(argv, f"http://127.0.0.1:{port}", Path(tmp) / "backend.log")
        server.admin_token = token
        try:
            server.start()
            yield server.url, server
        finally:
            server.stop()


def result_dict(result: BenchResult) -> dict[str, Any]:
    return asdict(result)

"""``jetfleet bench ota``: swaps under load and download throughput, on a real local control plane and agent.

Everything runs on loopback: a control plane (SQLite), agents with the process executor and the
Traefik node router, small ONNX models (needs the ``onnx`` package), and a large one for downloads.
Phase times come from the agent's own log lines (millisecond timestamps).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from jetfleet.bench.loopback import answers_ok, free_port
from jetfleet.errors import PermanentError

FEATURES, OUTPUTS = 256, 64
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _jetfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "jetfleet", *args]


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise PermanentError(f"bench: timed out after {timeout:g}s waiting for {what}")


class _Fleet:
    """The processes of one bench run, all stopped by PID at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: list[subprocess.Popen[bytes]] = []
        self.token = secrets.token_urlsafe(16)
        self.backend_url = ""

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def start_backend(self) -> None:
        port = free_port()
        self.backend_url = f"http://127.0.0.1:{port}"
        self.spawn("backend", _jetfleet("backend", "serve", "--port", str(port), "--admin-token", self.token,
                                        "--database-url", f"sqlite:///{self.root / 'backend.db'}",
                                        "--data-dir", str(self.root / "data"), "--log-level", "warning"))
        _wait(lambda: answers_ok(f"{self.backend_url}/health"), 60, "the control plane")

    def start_agent(self, name: str) -> _Agent:
        agent = _Agent(self.root / name, name, self.backend_url)
        agent.write_config()
        agent.process = self.spawn(f"{name}-{len(self.processes)}", _jetfleet("agent", "run", "--config",
                                                                               str(agent.config_path)))
        _wait(lambda: self._registered(name), 60, f"{name} registered")
        return agent

    def _registered(self, name: str) -> bool:
        return httpx.get(f"{self.backend_url}/api/v1/edge-devices/{name}", timeout=5,
                         headers={"Authorization": f"Bearer {self.token}"}).status_code == 200

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
            else:
                _kill_group(process.pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # children a killed agent left (model servers, Traefik)


@dataclass
class _Agent:
    dir: Path
    name: str
    backend_url: str
    router_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.dir / "config.json"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "agent.log"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        first = free_port()
        traefik = shutil.which("traefik") or shutil.which("traefik", path=str(Path(sys.executable).parent))
        self.config_path.write_text(json.dumps({
            "backend_url": self.backend_url, "device_id": self.name, "device_name": self.name,
            "state_dir": str(self.dir / "state"), "models_dir": str(self.dir / "models"),
            "log_file": str(self.log_path), "heartbeat_interval": 1.0, "metrics_port": 0, "executor": "process",
            "model_router_host": "127.0.0.1", "model_router_port": self.router_port,
            "model_router_api_port": free_port(), "model_router_binary": traefik,
            "model_port_range": [first, first + 40], "ota_interval": 1.0, "ota_drain_seconds": 1.0,
            "ota_disk_headroom_bytes": 0}))

    def log_times(self, pattern: str) -> list[float]:
        """Wall-clock times of the agent log lines matching ``pattern``."""
        times = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _LOG_TIME.match(line)
            if match and re.search(pattern, line):
                times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
        return times


class _Client:
    """Admin calls through the registry's own client."""

    def __init__(self, fleet: _Fleet) -> None:
        from jetfleet.backend.admin_client import AdminClient

        self.admin = AdminClient(fleet.backend_url, fleet.token)

    def push(self, name: str, path: Path, tag: str | None = None) -> Any:
        from jetfleet.backend.model_schemas import CreateVersion

        upload = self.admin.upload(path)
        return self.admin.create_version(name, CreateVersion(artifact_upload=upload.upload_id, filename=path.name,
                                                             tag=tag))

    def serving(self, model: str, device: str) -> tuple[int | None, str | None]:
        report = self.admin.model_status(model)
        entry = next((d for d in report.devices if d.device_id == device), None)
        return (entry.version, entry.state) if entry else (None, None)


@dataclass
class _Sample:
    sent: float
    seconds: float
    version: str | None


class _Load:
    """``threads`` clients sending inferences back to back through the node endpoint (bounded)."""

    def __init__(self, endpoint: str, model: str, threads: int, max_seconds: float) -> None:
        self.url = f"{endpoint}/v2/models/{model}/infer"
        self.samples: list[_Sample] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._lock = threading.Lock()

    def _run(self) -> None:
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, FEATURES],
                            "data": [0.5] * FEATURES}]}
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                sent = time.time()
                started = time.perf_counter()
                try:
                    response = client.post(self.url, json=body)
                    version = response.json()["model_version"] if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError, KeyError):
                    version = None
                with self._lock:
                    self.samples.append(_Sample(sent, time.perf_counter() - started, version))

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def first_answer_from(self, version: str) -> float | None:
        with self._lock:
            return min((s.sent + s.seconds for s in self.samples if s.version == version), default=None)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _swaps(fleet: _Fleet, client: _Client, agent: _Agent, swaps: int, threads: int) -> dict[str, Any]:
    from jetfleet.bench.testmodels import write_dense_onnx

    model = "bench-dense"
    client.push(model, write_dense_onnx(fleet.root / "v1.onnx", FEATURES, OUTPUTS, seed=1), tag="prod")
    client.admin.deploy(model, "prod", [agent.name], all_devices=False)
    _wait(lambda: client.serving(model, agent.name) == (1, "committed"), 120, "version 1 serving")
    rows = []
    with _Load(agent.endpoint, model, threads, max_seconds=120 + 40 * swaps) as load:
        for version in range(2, swaps + 2):
            client.push(model, write_dense_onnx(fleet.root / f"v{version}.onnx", FEATURES, OUTPUTS, seed=version))
            time.sleep(2.0)  # a baseline before the move
            moved = time.time()
            client.admin.move_tag(model, "prod", version)
            served = _wait(lambda v=version: load.first_answer_from(str(v)), 60, f"version {version} answering")
            _wait(lambda v=version: client.serving(model, agent.name) == (v, "committed"), 60, "committed")
            time.sleep(1.5)  # past the drain: the old server is stopped inside the window
            rows.append(_swap_row(agent, load, version, moved, served))
    samples = load.samples
    return {
        "swaps": len(rows),
        "requests": len(samples),
        "failed_requests": sum(1 for s in samples if s.version is None),
        "tag_move_to_serving_s_median": round(statistics.median(r["tag_move_to_serving_s"] for r in rows), 3),
        "tag_move_to_serving_s_max": round(max(r["tag_move_to_serving_s"] for r in rows), 3),
        "activation_excl_download_s_median": round(statistics.median(r["activation_s"] for r in rows), 3),
        "activation_excl_download_s_max": round(max(r["activation_s"] for r in rows), 3),
        "p50_ms_steady": round(1000 * _percentile([s.seconds for s in samples if not _in_any(s, rows)], 0.5), 2),
        "p99_ms_steady": round(1000 * _percentile([s.seconds for s in samples if not _in_any(s, rows)], 0.99), 2),
        "p99_ms_during_swap": round(1000 * _percentile([s.seconds for s in samples if _in_any(s, rows)], 0.99), 2),
        "max_ms_during_swap": round(1000 * max((s.seconds for s in samples if _in_any(s, rows)), default=0.0), 2),
        "load_threads": threads,
    }


def _swap_row(agent: _Agent, load: _Load, version: int, moved: float, served: float) -> dict[str, Any]:
    downloaded = [t for t in agent.log_times(rf"downloaded bench-dense version {version}:") if t >= moved - 1]
    switched = [t for t in agent.log_times(rf"bench-dense: traffic switched to version {version} ") if t >= moved - 1]
    if not downloaded or not switched:
        raise PermanentError(f"bench: agent log lacks the download/switch lines of version {version}")
    return {"version": version, "window": (moved, switched[0] + 1.5), "tag_move_to_serving_s": served - moved,
            "activation_s": switched[0] - downloaded[0]}


def _in_any(sample: _Sample, rows: list[dict[str, Any]]) -> bool:
    return any(start <= sample.sent <= end for start, end in (r["window"] for r in rows))


def _downloads(fleet: _Fleet, client: _Client, agent: _Agent, big_mb: int, curl_runs: int) -> dict[str, Any]:
    from jetfleet.bench.testmodels import write_dense_onnx

    side = int((big_mb * 1024 * 1024 / 4) ** 0.5)
    big = write_dense_onnx(fleet.root / "big.onnx", side, side, seed=7)
    record = client.push("bench-big", big, tag="big")
    size = big.stat().st_size
    big.unlink()
    curl = shutil.which("curl")
    curl_seconds = []
    if curl:
        url = f"{fleet.backend_url}/api/v1/models/artifacts/{record.sha256}"
        target = agent.dir / "curl.bin"
        for _ in range(curl_runs):
            started = time.perf_counter()
            subprocess.run([curl, "-sf", "-o", str(target), "-H", f"Authorization: Bearer {fleet.token}", url],
                           check=True)
            curl_seconds.append(time.perf_counter() - started)
            target.unlink()
    client.admin.deploy("bench-big", "big", [agent.name], all_devices=False)
    _wait(lambda: agent.log_times("downloaded bench-big version 1:"), 300, "the big download", interval=0.2)
    agent_seconds = _download_seconds(agent.log_path, "bench-big", 1)
    result: dict[str, Any] = {"artifact_mb": round(size / 1e6, 1), "agent_download_s": round(agent_seconds, 3),
                              "agent_mb_per_s": round(size / 1e6 / agent_seconds, 1)}
    if curl_seconds:
        median = statistics.median(curl_seconds)
        result |= {"curl_download_s_median": round(median, 3), "curl_mb_per_s": round(size / 1e6 / median, 1),
                   "agent_vs_curl": round(median / agent_seconds, 2)}
    result |= _resume(fleet, client, size)
    return result


def _download_seconds(log_path: Path, model: str, version: int) -> float:
    pattern = re.compile(rf"downloaded {model} version {version}: \d+ bytes \(from byte (\d+)\) in ([\d.]+) s")
    found = pattern.findall(log_path.read_text(errors="replace"))
    return float(found[-1][1])


def _resume(fleet: _Fleet, client: _Client, size: int) -> dict[str, Any]:
    """Kill -9 an agent halfway through the big download, start it again, see what it fetches."""
    for attempt in range(3):
        result = _resume_once(fleet, client, size, fleet.start_agent(f"resume-{attempt}"))
        if result is not None:
            return result
    return {"resume": "not measured: the download always finished before the kill"}


def _resume_once(fleet: _Fleet, client: _Client, size: int, agent: _Agent) -> dict[str, Any] | None:
    client.admin.deploy("bench-big", "big", [agent.name], all_devices=False)
    part_dir = agent.dir / "models/.downloads"

    def part_size() -> int:
        parts = list(part_dir.glob("*.part")) if part_dir.is_dir() else []
        return parts[0].stat().st_size if parts else 0

    _wait(lambda: part_size() > size * 0.3 or agent.log_times("downloaded bench-big"), 120, "the download",
          interval=0.005)
    assert agent.process is not None
    agent.process.kill()
    agent.process.wait(10)
    on_disk = part_size()
    if not 0 < on_disk < size:
        return None  # the download finished first (fast loopback)
    restarted = time.time()
    agent.process = fleet.spawn(f"{agent.name}-again", _jetfleet("agent", "run", "--config", str(agent.config_path)))
    _wait(lambda: agent.log_times("downloaded bench-big version 1:"), 300, "the resumed download", interval=0.1)
    text = agent.log_path.read_text(errors="replace")
    start = int(re.findall(r"resuming download of bench-big version 1 at byte (\d+)", text)[-1])
    done = agent.log_times("downloaded bench-big version 1:")[-1]
    return {"resume_killed_at_mb": round(on_disk / 1e6, 1), "resume_range_start_mb": round(start / 1e6, 1),
            "resume_refetched_bytes": on_disk - start,
            "resume_remainder_s": round(_download_seconds(agent.log_path, "bench-big", 1), 3),
            "resume_restart_to_done_s": round(done - restarted, 3)}


def run_ota_bench(*, swaps: int, threads: int, big_mb: int, curl_runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-ota-") as tmp, ExitStack() as stack:
        fleet = _Fleet(Path(tmp))
        stack.callback(fleet.stop)
        fleet.start_backend()
        client = _Client(fleet)
        stack.callback(client.admin.close)
        agent = fleet.start_agent("bench-node")
        result = {"heartbeat_interval_s": 1.0, **_swaps(fleet, client, agent, swaps, threads)}
        if big_mb:
            result |= _downloads(fleet, client, agent, big_mb, curl_runs)
        return result


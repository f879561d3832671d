"""``jetfleet bench ota``: swaps under load and download throughput, on a real local control plane and agent.

Everything runs on loopback: a control plane (SQLite), agents with the process executor and the
Traefik node router, small ONNX models (needs the ``onnx`` package), and a large one for downloads.
Phase times come from the agent's own log lines (millisecond timestamps).
"""

from __future__ import annotations

import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from jetfleet.bench.fleet import LocalFleet, ota_agent_config
from jetfleet.bench.procs import ManagedProcess, wait_until
from jetfleet.errors import PermanentError

FEATURES, OUTPUTS = 256, 64
_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    return wait_until(predicate, timeout, interval=interval, what=what)


@dataclass
class _Agent:
    dir: Path
    name: str
    router_port: int
    process: ManagedProcess

    @property
    def config_path(self) -> Path:
        return self.dir / "config.json"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def log_path(self) -> Path:
        return self.dir / "agent.log"

    def log_times(self, pattern: str) -> list[float]:
        """Wall-clock times of the agent log lines matching ``pattern``."""
        times = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _LOG_TIME.match(line)
            if match and re.search(pattern, line):
                times.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
        return times


def _start_agent(fleet: LocalFleet, name: str) -> _Agent:
    node_dir = fleet.work / name
    ota = ota_agent_config(node_dir, ota_interval=1.0, drain_seconds=1.0)
    process = fleet.start_agent(name, heartbeat_interval=1.0, **ota)
    fleet.wait_registered([name])
    return _Agent(node_dir, name, int(ota["model_router_port"]), process)


class _Client:
    """Admin calls through the registry's own client."""

    def __init__(self, fleet: LocalFleet) -> None:
        from jetfleet.backend.admin_client import AdminClient

        self.admin = AdminClient(fleet.backend_url, fleet.admin_token)

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


def _swaps(fleet: LocalFleet, client: _Client, agent: _Agent, swaps: int, threads: int) -> dict[str, Any]:
    from jetfleet.bench.testmodels import write_dense_onnx

    model = "bench-dense"
    client.push(model, write_dense_onnx(fleet.work / "v1.onnx", FEATURES, OUTPUTS, seed=1), tag="prod")
    client.admin.deploy(model, "prod", [agent.name], all_devices=False)
    _wait(lambda: client.serving(model, agent.name) == (1, "committed"), 120, "version 1 serving")
    rows = []
    with _Load(agent.endpoint, model, threads, max_seconds=120 + 40 * swaps) as load:
        for version in range(2, swaps + 2):
            client.push(model, write_dense_onnx(fleet.work / f"v{version}.onnx", FEATURES, OUTPUTS, seed=version))
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


def _downloads(fleet: LocalFleet, client: _Client, agent: _Agent, big_mb: int, curl_runs: int) -> dict[str, Any]:
    from jetfleet.bench.testmodels import write_dense_onnx

    side = int((big_mb * 1024 * 1024 / 4) ** 0.5)
    big = write_dense_onnx(fleet.work / "big.onnx", side, side, seed=7)
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
            subprocess.run([curl, "-sf", "-o", str(target), "-H", f"Authorization: Bearer {fleet.admin_token}", url],
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


def _resume(fleet: LocalFleet, client: _Client, size: int) -> dict[str, Any]:
    """Kill -9 an agent halfway through the big download, start it again, see what it fetches."""
    for attempt in range(3):
        result = _resume_once(fleet, client, size, _start_agent(fleet, f"resume-{attempt}"))
        if result is not None:
            return result
    return {"resume": "not measured: the download always finished before the kill"}


def _resume_once(fleet: LocalFleet, client: _Client, size: int, agent: _Agent) -> dict[str, Any] | None:
    client.admin.deploy("bench-big", "big", [agent.name], all_devices=False)
    part_dir = agent.dir / "models/.downloads"

    def part_size() -> int:
        parts = list(part_dir.glob("*.part")) if part_dir.is_dir() else []
        return parts[0].stat().st_size if parts else 0

    _wait(lambda: part_size() > size * 0.3 or agent.log_times("downloaded bench-big"), 120, "the download",
          interval=0.005)
    agent.process.kill9()
    on_disk = part_size()
    if not 0 < on_disk < size:
        return None  # the download finished first (fast loopback)
    restarted = time.time()
    agent.process = fleet.start(f"{agent.name}-again", "agent", "run", "--config", str(agent.config_path))
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
        fleet = LocalFleet(Path(tmp), secrets.token_urlsafe(16))
        stack.callback(fleet.stop_all)
        fleet.start_backend("--log-level", "warning")
        client = _Client(fleet)
        stack.callback(client.admin.close)
        agent = _start_agent(fleet, "bench-node")
        result = {"heartbeat_interval_s": 1.0, **_swaps(fleet, client, agent, swaps, threads)}
        if big_mb:
            result |= _downloads(fleet, client, agent, big_mb, curl_runs)
        return result


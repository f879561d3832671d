"""The processes of ``jetfleet bench gateway``: nodes that can be killed and restarted, the gateway, wrk."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv
from jetfleet.errors import PermanentError


class Node:
    """A node process on a fixed loopback port that can be killed and restarted on the same port."""

    def __init__(self, workdir: Path, name: str, argv_for_port: Callable[[int], list[str]], cpu: int | None = None,
                 *, env: Mapping[str, str] | None = None, start_timeout: float = 120.0) -> None:
        self.workdir, self.name, self._argv_for_port, self.cpu = workdir, name, argv_for_port, cpu
        self.env, self.start_timeout = env, start_timeout
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: ManagedProcess | None = None
        self._starts = 0

    def start(self) -> None:
        self._starts += 1
        self.process = ManagedProcess(self._argv_for_port(self.port),
                                      self.workdir / f"{self.name}-{self._starts}.log", env=self.env, cpu=self.cpu)
        self.process.wait_http(self.url + "/health", timeout=self.start_timeout)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill9()
        self.process.stop()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


class Gateway:
    """``jetfleet gateway run --fleet`` on free loopback ports."""

    def __init__(self, workdir: Path, nodes: list[dict[str, Any]], **settings: Any) -> None:
        ports = {key: free_port() for key in ("port", "api_port", "metrics_port", "health_port")}
        self.settings = {"host": "127.0.0.1", "metrics_host": "127.0.0.1", "access_log": False, **ports, **settings}
        self.url = f"http://127.0.0.1:{ports['port']}"
        self.api = f"http://127.0.0.1:{ports['api_port']}"
        self.metrics = f"http://127.0.0.1:{ports['metrics_port']}/metrics"
        workdir.mkdir(parents=True, exist_ok=True)
        fleet = workdir / "fleet.yml"
        fleet.write_text(yaml.safe_dump({"gateway": self.settings, "nodes": nodes}))
        self.proc = ManagedProcess(jetfleet_argv("gateway", "run", "--fleet", str(fleet), "--work-dir",
                                                 str(workdir / "traefik")), workdir / "gateway.log")

    def server_status(self, service: str) -> dict[str, str]:
        try:
            body = httpx.get(f"{self.api}/api/http/services/{service}", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return dict(body.get("serverStatus") or {}) if isinstance(body, dict) else {}

    def wait_up(self, service: str, count: int, timeout: float = 120.0) -> None:
        self.proc.wait_http(self.api + "/ping", timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.server_status(service)
            if len(status) == count and all(s == "UP" for s in status.values()):
                return
            time.sleep(0.1)
        raise PermanentError(f"{service}: not every server UP within {timeout:.0f}s")

    def seconds_until(self, service: str, url: str, state: str, timeout: float = 15.0) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.server_status(service).get(url) == state:
                return time.monotonic() - started
            time.sleep(0.02)
        return None

    def stop(self) -> None:
        self.proc.stop()


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(url: str, *, connections: int, seconds: float) -> dict[str, float]:
    """Requests/s and p50/p99 latency (ms) from ``wrk`` (Debian package wrk), one thread."""
    result = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "--timeout", "5s",
                             url], capture_output=True, text=True, timeout=seconds + 60, check=True)
    rps = _WRK_RPS.search(result.stdout)
    percentiles = {p: float(v) * _UNIT_MS[u] for p, v, u in _WRK_PCT.findall(result.stdout)}
    if rps is None or set(percentiles) != {"50", "99"}:
        raise PermanentError(f"cannot read wrk's output:\n{result.stdout}")
    return {"rps": float(rps.group(1)), "p50_ms": percentiles["50"], "p99_ms": percentiles["99"]}

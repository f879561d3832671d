"""``gateway run``: the real Traefik as a child process, plus the gateway's /health service.

Everything is validated and written before Traefik starts, so bad input never reaches it. SIGTERM or
SIGINT stops Traefik by its PID (SIGTERM, then SIGKILL after a grace period) and then the health service.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from jetfleet.errors import ConfigError, PermanentError
from jetfleet.gateway.fleet import GatewaySettings
from jetfleet.gateway.health import HealthServer
from jetfleet.traefik.config import DynamicConfig, write_dynamic

log = logging.getLogger("jetfleet.gateway.run")
STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class GatewayRun:
    settings: GatewaySettings
    flags: tuple[str, ...]
    file_config: DynamicConfig
    file_path: Path
    node_names: Mapping[str, str] = field(default_factory=dict)


def run_gateway(run: GatewayRun, traefik: str) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until Traefik exits by itself (its exit code)."""
    write_dynamic(run.file_config, run.file_path)
    health = _start_health(run)
    stop = threading.Event()
    previous = _on_signals(stop.set)
    process = subprocess.Popen([traefik, *run.flags])
    try:
        log.info("traefik started (pid %d)", process.pid)
        _wait_ready(process, run.settings, stop)
        print(f"gateway ready: http://{run.settings.host}:{run.settings.port} (traefik pid {process.pid}, "
              f"API http://{run.settings.api_host}:{run.settings.api_port})", flush=True)
        while not stop.wait(0.2):
            if process.poll() is not None:
                log.error("traefik exited by itself with code %s", process.returncode)
                return process.returncode or 1
        return 0
    finally:
        _stop_process(process)
        health.stop()
        _restore_signals(previous)


def _start_health(run: GatewayRun) -> HealthServer:
    api_host = "127.0.0.1" if run.settings.api_host in ("0.0.0.0", "::") else run.settings.api_host
    try:
        health = HealthServer("127.0.0.1", run.settings.health_port, f"http://{api_host}:{run.settings.api_port}",
                              run.node_names)
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{run.settings.health_port}: {exc.strerror}",
                          key="gateway.health_port") from exc
    health.start()
    return health


def _wait_ready(process: subprocess.Popen[bytes], settings: GatewaySettings, stop: threading.Event) -> None:
    api_host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    url = f"http://{api_host}:{settings.api_port}/ping"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if process.poll() is not None:
            raise PermanentError(f"traefik exited at start with code {process.returncode} (see its log above)")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        stop.wait(0.1)
    if not stop.is_set():
        raise PermanentError(f"traefik did not answer {url} within {READY_TIMEOUT_SECONDS:.0f}s")


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("traefik (pid %d) ignored SIGTERM for %.0fs: killing it", process.pid, STOP_GRACE_SECONDS)
        process.kill()
        process.wait(5)
    log.info("traefik (pid %d) stopped with code %s", process.pid, process.returncode)


def _on_signals(callback: Callable[[], None]) -> dict[int, Any]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        callback()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def command_line(traefik: str, flags: Sequence[str]) -> str:
    return " ".join([traefik, *flags])

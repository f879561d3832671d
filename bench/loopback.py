"""Child processes on loopback, for the benchmarks and the demo: a free port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from jetfleet.errors import PermanentError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_http_ok(url: str, process: subprocess.Popen[Any], *, timeout: float, what: str,
                 exit_detail: Callable[[], str] = lambda: "", interval: float = 0.1) -> None:
    """Poll ``url`` until it answers 200; fail at once if ``process`` exits (with ``exit_detail()``, e.g. the
    tail of its log), or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PermanentError(f"{what} exited with code {process.returncode}{exit_detail()}")
        if answers_ok(url):
            return
        time.sleep(interval)
    raise PermanentError(f"{what} did not answer 200 at {url} within {timeout:g} s")

"""Child processes on loopback for the benchmarks, the demo and the tests: one way to start, wait for and stop them.

Every process runs in its own session with its output in a log file, and is stopped by PID (SIGTERM, then
SIGKILL of its whole process group), so nothing it started outlives it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from jetfleet.errors import PermanentError


class WaitTimeout(PermanentError):
    """What was waited for did not happen in time (or the process meant to do it exited)."""


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


def jetfleet_argv(*args: str) -> list[str]:
    """The ``jetfleet`` CLI of this Python (a checkout or an install)."""
    return [sys.executable, "-m", "jetfleet", *args]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "") -> object:
    """Poll ``predicate`` until it returns a truthy value; ``WaitTimeout`` after ``timeout`` seconds.

    An exception from ``predicate`` counts as "not yet" (a server still starting refuses connections) and is
    named in the timeout's message; a ``PermanentError`` (e.g. the process that should answer exited) ends the
    wait at once.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except PermanentError:
            raise
        except Exception as exc:
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what or predicate!r}; last error: {last_exc!r}")


class ManagedProcess:
    """A child process in its own session, logging to ``log_path``, stopped by PID.

    ``cpu`` pins it to one core (taskset pins before exec, so every thread it starts stays there).
    """

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None, cpu: int | None = None) -> None:
        self.argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 20.0, interval: float = 0.1) -> None:
        """Until ``url`` answers 200; fails at once, with the log's tail, if the process exits first."""
        def ready() -> bool:
            if not self.alive():
                raise WaitTimeout(f"{self.argv[:5]} exited with {self.proc.returncode} before {url} answered:\n"
                                  f"{self.output()[-4000:]}")
            return answers_ok(url, timeout=1.0)

        try:
            wait_until(ready, timeout, interval=interval, what=url)
        except WaitTimeout as exc:
            if self.alive():
                raise WaitTimeout(f"{exc}\n--- log of {self.argv[:5]} ---\n{self.output()[-4000:]}") from None
            raise

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the process (not its group): a crash, not a clean stop."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL the whole process group if it does not exit in time."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # stray grandchildren of this session
        self._log.close()
        return self.proc.returncode


@contextmanager
def managed(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None,
            ready_url: str | None = None, timeout: float = 20.0) -> Iterator[ManagedProcess]:
    """A :class:`ManagedProcess` for the ``with`` block, optionally waited for until ``ready_url`` answers."""
    proc = ManagedProcess(argv, log_path, env=env, cwd=cwd)
    try:
        if ready_url:
            proc.wait_http(ready_url, timeout)
        yield proc
    finally:
        proc.stop()

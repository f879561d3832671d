"""Start real processes for tests, wait for them, and always stop them by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from jetfleet.bench.loopback import answers_ok
from jetfleet.bench.loopback import free_port as free_port  # re-exported: the tests import it from here

REPO_ROOT = Path(__file__).resolve().parents[2]


def jetfleet_cmd(*args: str) -> list[str]:
    """The ``jetfleet`` CLI as run from this checkout (no install needed)."""
    return [sys.executable, "-m", "jetfleet", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JETFLEET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = "") -> object:
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}; last error: {last_exc!r}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    return answers_ok(url, timeout)


class ManagedProcess:
    """A child process in its own session, with its output in a log file, stopped by PID."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=env or subprocess_env(),
            cwd=cwd or REPO_ROOT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.argv} exited with {self.proc.returncode}:\n{self.output()}")
            return http_ok(url)

        try:
            wait_until(ready, timeout, interval=0.1, what=url)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log of {self.argv[:4]} ---\n{self.output()[-4000:]}") from None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the process (not its group): simulates a crash."""
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
def managed(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
            ready_url: str | None = None, timeout: float = 20.0) -> Iterator[ManagedProcess]:
    proc = ManagedProcess(argv, log_path, env=env)
    try:
        if ready_url:
            proc.wait_http(ready_url, timeout)
        yield proc
    finally:
        proc.stop()

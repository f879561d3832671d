"""The tegrastats source: a long-lived ``tegrastats --interval N`` child whose lines are parsed as they come.

The child runs in its own session and is stopped by its PID (process group) on ``close()``. When it exits it
is restarted after a delay that doubles up to a cap (reset once it produced a sample). The latest parsed
sample is served while it is fresh; a missing or stale sample makes the source report down with the reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import suppress

from .model import Reading
from .source import SourceUnavailable
from .tegrastats_parser import TegrastatsSample, UnparsedLine, parse_tegrastats_line


class TegrastatsSource:
    name = "tegrastats"

    def __init__(self, path: str, interval_ms: int = 5000, *, restart_delay: float = 1.0,
                 max_restart_delay: float = 30.0, stale_after: float | None = None) -> None:
        self.argv = [path, "--interval", str(interval_ms)]
        interval = interval_ms / 1000
        self.stale_after = stale_after if stale_after is not None else max(3 * interval, interval + 5.0)
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.starts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._latest: tuple[float, TegrastatsSample] | None = None
        self._last_output = ""
        self._error: str | None = "tegrastats has not produced a sample yet"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tegrastats", daemon=True)
        self._thread.start()

    def read(self) -> Reading:
        with self._lock:
            latest, error = self._latest, self._error
        if latest is None:
            raise SourceUnavailable(error or "no tegrastats sample yet")
        age = time.monotonic() - latest[0]
        if age > self.stale_after:
            raise SourceUnavailable(f"no tegrastats sample for {age:.0f} s" + (f" ({error})" if error else ""))
        return latest[1].to_reading()

    def close(self) -> None:
        self._stop.set()
        self._terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        delay = self.restart_delay
        while not self._stop.is_set():
            produced = self._run_once()
            if produced:
                delay = self.restart_delay
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.max_restart_delay)

    def _run_once(self) -> bool:
        """Run the child until it exits; True when it produced at least one sample."""
        try:
            proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1, errors="replace", start_new_session=True)
        except OSError as exc:
            self._set_error(f"cannot start {self.argv[0]}: {exc.strerror or exc}")
            return False
        self._proc = proc
        self.starts += 1
        if self._stop.is_set():  # close() raced with the start: do not leave the child behind
            self._terminate()
        produced = False
        assert proc.stdout is not None
        with proc.stdout as output:
            for line in output:
                produced = self._consume(line) or produced
        code = proc.wait()
        if not self._stop.is_set():
            self._set_error(f"tegrastats exited with status {code}" +
                            (f": {self._last_output}" if self._last_output else ""))
        return produced

    def _consume(self, line: str) -> bool:
        if not line.strip():
            return False
        result = parse_tegrastats_line(line)
        with self._lock:
            if isinstance(result, UnparsedLine):
                self._last_output = line.strip()[:200]
                return False
            self._latest = (time.monotonic(), result)
            self._error = None
            return True

    def _set_error(self, message: str) -> None:
        with self._lock:
            self._error = message

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the group id is its PID
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=3)

"""The tests' defaults on top of :mod:`jetfleet.bench.procs` (the one process helper): run from this checkout,
with a clean environment, and fail the test (AssertionError) when a wait times out."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from jetfleet.bench import procs
from jetfleet.bench.procs import answers_ok
from jetfleet.bench.procs import free_port as free_port  # re-exported: the tests import it from here

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
    try:
        return procs.wait_until(predicate, timeout, interval, what)
    except procs.WaitTimeout as exc:
        raise AssertionError(str(exc)) from None


def http_ok(url: str, timeout: float = 1.0) -> bool:
    return answers_ok(url, timeout)


class ManagedProcess(procs.ManagedProcess):
    """A process of this checkout's test run: clean environment and cwd by default; waits fail the test."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        super().__init__(argv, log_path, env=env or subprocess_env(), cwd=cwd or REPO_ROOT)

    def wait_http(self, url: str, timeout: float = 20.0, interval: float = 0.1) -> None:
        try:
            super().wait_http(url, timeout, interval)
        except procs.WaitTimeout as exc:
            raise AssertionError(str(exc)) from None


@contextmanager
def managed(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
            ready_url: str | None = None, timeout: float = 20.0) -> Iterator[procs.ManagedProcess]:
    with procs.managed(argv, log_path, env=env or subprocess_env(), cwd=REPO_ROOT, ready_url=ready_url,
                       timeout=timeout) as proc:
        yield proc

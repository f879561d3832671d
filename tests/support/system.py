"""System packages for tests: install when missing and root is available, else skip with the reason.

In CI (``CI=true``) a missing system dependency is a failure, never a silent skip.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from typing import Any, NoReturn

import pytest

_apt_updated = False


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """A part the test needs is missing here: skip with the reason, or fail in CI (where it must be)."""
    if in_ci():
        pytest.fail(reason)
    pytest.skip(reason)


def _apt_install(packages: list[str]) -> None:
    global _apt_updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        _apt_updated = True
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                   check=True, env=env, capture_output=True)


def require_module(module: str, extra: str) -> Any:
    """Import a Python module a test needs; skip with the reason when absent (fail in CI)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(f"Python module '{module}' is not installed (pip install '.[{extra}]' in the checkout): {exc}")


def require_binary(binary: str, apt_packages: list[str], *, search: list[str] | None = None) -> str:
    """Path of ``binary`` (on PATH or in ``search`` dirs); apt-installs it when root, else skips."""

    def find() -> str | None:
        found = shutil.which(binary)
        if found:
            return found
        for directory in search or []:
            candidate = os.path.join(directory, binary)
            if os.access(candidate, os.X_OK):
                return candidate
        return None

    path = find()
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            _apt_install(apt_packages)
        except subprocess.CalledProcessError as exc:
            unavailable(f"could not apt-get install {apt_packages}: {exc.stderr!r}")
        path = find()
        if path:
            return path
    unavailable(f"'{binary}' is not installed (Debian packages {apt_packages}) and we are not root to install it")

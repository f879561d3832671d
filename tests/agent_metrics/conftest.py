from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jetson"
TEGRASTATS = FIXTURES / "tegrastats"
FAKE_TEGRASTATS = FIXTURES / "bin" / "fake-tegrastats"


def tegrastats_lines(name: str) -> list[str]:
    return (TEGRASTATS / f"{name}.txt").read_text().splitlines()


def board(name: str) -> Path:
    return FIXTURES / name


@pytest.fixture
def agx_orin() -> Path:
    return board("agx-orin-32gb-jp6")


def fake_tegrastats(directory: Path, lines: Path, *options: str) -> str:
    """An executable ``tegrastats`` in ``directory`` that runs the fixture script with ``options``."""
    import shlex
    import sys

    script = directory / "tegrastats"
    argv = [sys.executable, str(FAKE_TEGRASTATS), "--lines", str(lines), *options]
    script.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(arg) for arg in argv) + ' "$@"\n')
    script.chmod(0o755)
    return str(script)


def pid_gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False

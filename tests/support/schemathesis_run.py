"""Run schemathesis (the ``st`` CLI) against a real server's /openapi.json: every operation, every check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"


def run_schemathesis(schema_url: str, workdir: Path, *, bearer: str = "", max_examples: int = 20,
                     timeout: float = 240.0, extra: list[str] | None = None) -> str:
    """Fuzz every operation of ``schema_url``; fails the test with schemathesis' report when anything fails.

    ``bearer`` is sent to the operations whose security requirement asks for an HTTP bearer token.
    """
    st = Path(sys.executable).with_name("st")
    argv = [str(st), "--config-file", str(CONFIG), "--no-color", "run", schema_url, "--checks", "all",
            "--phases", PHASES, "--max-examples", str(max_examples), "--seed", "1", "--workers", "1",
            "--report", "junit", "--report-dir", str(workdir / "schemathesis-report"), *(extra or [])]
    env = {**os.environ, "JETFLEET_FUZZ_TOKEN": bearer or "no-token"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=env)
    report = result.stdout + result.stderr
    (workdir / "schemathesis.txt").write_text(report)
    assert result.returncode == 0, f"schemathesis found contract failures:\n{report[-12000:]}"
    assert "selected /" in report, report[-3000:]
    return report

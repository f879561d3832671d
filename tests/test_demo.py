"""The README's first command: the whole local-fleet demo runs and shows each step working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.processes import subprocess_env
from tests.support.system import require_binary


def test_readme_demo_runs_every_step(tmp_path: Path) -> None:
    require_binary("espeak-ng", ["espeak-ng"])
    require_binary("sox", ["sox"])
    result = subprocess.run([sys.executable, "-m", "jetfleet.bench.demo"], capture_output=True, text=True,
                            env=subprocess_env(JETFLEET_DEMO_DIR=str(tmp_path / "demo"), COLUMNS="200"),
                            timeout=900)
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-3000:]
    assert "jetfleet: 2 devices" in out and out.count(" online ") >= 2  # fleet status
    assert "jetfleet_heartbeats_total" in out  # the exporter
    assert "demo-dense: version 1 serving on 2 device(s)" in out
    assert "demo-dense: version 2 serving on 2 device(s)" in out  # the tag move swapped both
    assert "stand_up ('sta op'" in out  # the text command
    assert "300 commands sent, 0 failed" in out  # one voice node killed behind the gateway
    assert "demo finished" in out
    leftovers = [p.info["cmdline"] for p in psutil.process_iter(["cmdline", "cwd"])
                 if (p.info["cwd"] or "").startswith(str(tmp_path))]  # the demo starts everything in its dir
    assert leftovers == []  # every process the demo started was stopped

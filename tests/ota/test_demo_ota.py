"""The OTA demo script (for the README): it runs end to end and shows the swap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.processes import subprocess_env


def test_ota_demo_pushes_deploys_infers_and_swaps(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "jetfleet.bench.demo_ota", "--work", str(tmp_path)],
                            capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "demo-dense version 1 tagged prod: onnx" in out
    assert "demo-dense:prod (version 1) deployed to 2 device(s): jetson-a, jetson-b" in out
    assert "demo-dense: version 1 serving on 2 device(s)" in out
    assert "demo-dense version 1:\n  output [1, 3]:" in out
    assert "demo-dense:prod moved from version 1 to version 2; 2 device(s) follow it" in out
    assert "demo-dense: version 2 serving on 2 device(s)" in out
    assert "demo-dense version 2:\n  output [1, 3]:" in out
    assert "committed" in out
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == [], "the demo left processes running"

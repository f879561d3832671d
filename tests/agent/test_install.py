"""scripts/install.sh into a temporary root: directories, config, venv, systemd unit."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

from tests.support.processes import REPO_ROOT


def run_install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO_ROOT / "scripts/install.sh"), "--prefix", str(root), *extra],
                          capture_output=True, text=True, timeout=900)


def test_install_into_a_temporary_root(tmp_path: Path) -> None:
    """The Jetson defaults (docker executor: models run in the model-server image): node router, golden check,
    Docker SDK in the venv, not the model server's stack. tests/agent/test_install_ota.py deploys with them."""
    root = tmp_path / "root"
    result = run_install(root, "--platform", "jetson")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "platform jetson, extras 'ota,jobs'" in result.stdout
    venv = root / "opt/jetson-client/venv"
    assert (venv / "bin/traefik").is_file()
    for module, present in (("numpy", True), ("docker", True), ("onnxruntime", False), ("fastapi", False)):
        found = subprocess.run([str(venv / "bin/python"), "-c", f"import {module}"], capture_output=True,
                               cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, timeout=120).returncode == 0
        assert found == present, module
    for directory in ("opt/jetson-client", "opt/ml-platform/models", "etc/jetson-client"):
        assert (root / directory).is_dir(), directory
    assert stat.S_IMODE((root / "var/lib/jetson-client").stat().st_mode) == 0o700
    config = json.loads((root / "etc/jetson-client/config.json").read_text())
    assert config["backend_url"] and config["metrics_port"] == 9101

    unit = (root / "etc/systemd/system/jetson-client.service").read_text()
    assert "ExecStart=/opt/jetson-client/venv/bin/jetfleet agent run --config /etc/jetson-client/config.json" in unit
    assert "Restart=on-failure" in unit
    assert "no daemon-reload done" in result.stdout

    jetfleet = root / "opt/jetson-client/venv/bin/jetfleet"
    command = root / "usr/local/bin/jetfleet"  # what the README's `jetfleet agent ...` lines find on PATH
    assert command.is_symlink() and command.resolve() == jetfleet.resolve()
    help_text = subprocess.run(["jetfleet", "agent", "--help"], capture_output=True, text=True, cwd=tmp_path,
                               env={"PATH": f"{command.parent}:/usr/bin:/bin"}, timeout=60)
    assert help_text.returncode == 0, help_text.stderr
    assert "run" in help_text.stdout

    # A second run keeps the operator's config and a jetfleet command that is not its link.
    edited = root / "etc/jetson-client/config.json"
    edited.write_text(json.dumps({"backend_url": "http://10.1.2.3:8000"}))
    command.unlink()
    command.write_text("#!/bin/sh\necho the operator's own\n")
    again = run_install(root, "--platform", "jetson")
    assert again.returncode == 0, again.stderr
    assert "keeping existing" in again.stdout
    assert json.loads(edited.read_text()) == {"backend_url": "http://10.1.2.3:8000"}
    assert "jetfleet exists and is not a link: left as it is" in again.stderr
    assert not command.is_symlink() and "operator's own" in command.read_text()


def test_install_rejects_unknown_options(tmp_path: Path) -> None:
    result = run_install(tmp_path, "--frobnicate")
    assert result.returncode == 2
    assert "unknown option '--frobnicate'" in result.stderr
    result = run_install(tmp_path, "--platform", "tx2")
    assert result.returncode == 2
    assert "--platform must be jetson, generic or auto, not 'tx2'" in result.stderr
    assert not (tmp_path / "opt").exists()

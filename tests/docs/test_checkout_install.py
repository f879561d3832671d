"""The README's control-plane install, as a new user types it: a fresh venv, ``pip install '.[backend,postgres]'``
in a copy of the checkout, then the README's ``jetfleet backend serve`` from that venv (not this test run's) on a
real PostgreSQL."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.docs.commands import DocShell
from tests.docs.test_readme import ADMIN_TOKEN, FLEET_KEY, RUN
from tests.support.postgres import PostgresServer, create_database
from tests.support.processes import REPO_ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
INSTALL = "python3 -m venv /opt/jetfleet && /opt/jetfleet/bin/pip install '.[backend,postgres]'"
SERVE = next(command for command, test in RUN.items() if test == "control_plane fixture")


def copy_checkout(dest: Path) -> Path:
    """What a clone of this checkout holds (tracked and new, not ignored files; links kept as links)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source, target = REPO_ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet committed
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


def user_shell(checkout: Path) -> DocShell:
    """A login shell's environment: none of this test run's venv, PYTHONPATH or JETFLEET_* settings."""
    ours = str(REPO_ROOT / ".venv" / "bin")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("JETFLEET_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != ours)
    return DocShell(checkout, {**env, "ADMIN_TOKEN": ADMIN_TOKEN, "FLEET_KEY": FLEET_KEY})


def test_the_readme_install_of_the_checkout_serves_the_control_plane_on_postgresql(
        postgres: PostgresServer, tmp_path: Path) -> None:
    shell = user_shell(copy_checkout(tmp_path / "jetfleet"))
    venv, data = tmp_path / "opt-jetfleet", tmp_path / "var-lib-jetfleet"
    data.mkdir()
    shell.run(INSTALL, {"/opt/jetfleet": str(venv)}, timeout=900)
    shell.run("export ADMIN_TOKEN=$(openssl rand -hex 24) FLEET_KEY=$(openssl rand -hex 24)")
    assert shutil.which("openssl", path=shell.env["PATH"]), "the export above would set empty keys"
    shell.run("export PATH=/opt/jetfleet/bin:$PATH", {"/opt/jetfleet": str(venv)})
    shell.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{shell.env['PATH']}"  # what the export does for the next lines

    port = free_port()
    database = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    server = shell.start(SERVE, tmp_path / "backend.log", {
        "sqlite:////var/lib/jetfleet/fleet.db": database, "/var/lib/jetfleet": str(data),
        "0.0.0.0": "127.0.0.1", "--port 8000": f"--port {port}"})
    try:
        server.wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        command_line = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert str(venv) in command_line, command_line  # the installed jetfleet, not this run's
        status = httpx.get(f"http://127.0.0.1:{port}/api/v1/status", timeout=10,
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).raise_for_status().json()
        assert (status["database"], status["leader"]) == ("postgresql", True)
        pinned = shell.run("jetfleet backend public-key --signing-key /var/lib/jetfleet/manifest-signing.key",
                           {"/var/lib/jetfleet": str(data)})
        assert len(base64.b64decode(pinned.strip(), validate=True)) == 32
    finally:
        server.stop()
    assert (data / "artifacts").is_dir() and not (tmp_path / "jetfleet" / "jetfleet-data").exists()  # --data-dir

"""A real Docker Engine for tests, and the images built on it once per session.

Use the running engine when ``DOCKER_HOST`` or ``/var/run/docker.sock`` answers; otherwise (as root)
install docker.io and start a private ``dockerd`` as the toolchain notes describe: vfs
storage, no bridge and no iptables (containers use host networking), its own short run directory.
That daemon is stopped by PID when the session ends and its directory removed.

Fixtures (session scope; shared through ``tests/conftest.py``): ``docker_engine``,
``local_debian_base`` (``local/debian:bookworm``, debootstrap tarball cached in ~/.cache/jetfleet),
``model_server_image`` (``Dockerfile.l4t`` target ``model-server`` on that base).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ManagedProcess, wait_until
from tests.support.system import require_binary, unavailable

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
MODEL_SERVER_TAG = "jetfleet/model-server:test"


@dataclass(frozen=True)
class DockerEngine:
    base_url: str
    client: Any  # docker.DockerClient
    started_here: bool

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (docker CLI, compose, the agent) that should use this engine."""
        return {"DOCKER_HOST": self.base_url}


def _client(base_url: str) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, version="auto", timeout=120)


def _answering(base_url: str) -> Any | None:
    if base_url.startswith("unix://") and not _unix_socket_accepts(base_url.removeprefix("unix://")):
        return None  # checked first: docker-py leaks the socket of a refused connection
    try:
        client = _client(base_url)
    except Exception:  # refused, or not a docker daemon
        return None
    try:
        client.ping()
    except Exception:
        client.close()
        return None
    return client


def _unix_socket_accepts(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@contextmanager
def docker_engine_session() -> Iterator[DockerEngine]:
    """The running engine, or a private dockerd for the duration of the block."""
    for base_url in filter(None, (os.environ.get("DOCKER_HOST"), DEFAULT_SOCKET)):
        client = _answering(base_url)
        if client is not None:
            yield DockerEngine(base_url, client, started_here=False)
            return
    if os.geteuid() != 0:
        unavailable("no Docker Engine answers and we are not root to start one")
    dockerd = require_binary("dockerd", ["docker.io"])
    run = Path(tempfile.mkdtemp(prefix="jfd", dir="/tmp"))  # short: unix socket paths are limited
    base_url = f"unix://{run}/docker.sock"
    daemon = ManagedProcess([dockerd, "--storage-driver=vfs", "--iptables=false", "--ip6tables=false",
                             "--bridge=none", "-H", base_url, "--data-root", str(run / "data"),
                             "--exec-root", str(run / "exec"), "--pidfile", str(run / "dockerd.pid")],
                            run / "dockerd.log")
    try:
        client = wait_until(lambda: _answering(base_url) if daemon.alive() else _died(daemon), 60, interval=0.5,
                            what=f"dockerd on {base_url}")
        yield DockerEngine(base_url, client, started_here=True)
    finally:
        daemon.stop(timeout=60)
        _unmount_below(run)
        shutil.rmtree(run, ignore_errors=True)


def _died(daemon: ManagedProcess) -> None:
    raise AssertionError(f"dockerd exited with {daemon.proc.returncode}:\n{daemon.output()[-3000:]}")


def _unmount_below(root: Path) -> None:
    """dockerd leaves its netns bind mount (and more if killed) under its exec root."""
    with open("/proc/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    with docker_engine_session() as engine:
        yield engine


@pytest.fixture(scope="session")
def local_debian_base(docker_engine: DockerEngine) -> str:
    import docker.errors

    from images.build import LOCAL_BASE, ensure_local_base, rootfs_tarball_path

    try:
        docker_engine.client.images.get(LOCAL_BASE)
    except docker.errors.ImageNotFound:
        if not rootfs_tarball_path().is_file():
            require_binary("debootstrap", ["debootstrap"])
        ensure_local_base(docker_engine.client, log=_log)
    return LOCAL_BASE


@pytest.fixture(scope="session")
def model_server_image(docker_engine: DockerEngine, local_debian_base: str) -> str:
    """The model-server image on the local Debian base (ONNX Runtime only), built once per session."""
    from images.build import build_image

    started = time.monotonic()
    build_image(docker_engine.client, "model-server", MODEL_SERVER_TAG, "local", log=_log)
    _log(f"built {MODEL_SERVER_TAG} in {time.monotonic() - started:.0f} s")
    return MODEL_SERVER_TAG


def _log(message: str) -> None:
    print(f"[docker] {message}", flush=True)

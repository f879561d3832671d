"""OTA with the docker executor on a real Docker Engine and the real model-server image.

The key scenarios only (containers on vfs are slow to create): deploy by tag, swap under load with
zero failed requests, a removed container and a restarted Docker daemon both healed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from tests.backend.registry_helpers import dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ota.nodes import Node, deploy, model_state, move_tag, wait_registered, wait_state
from tests.ota.test_ota_process import Load, infer, reference, wait_until_some
from tests.support.backend import BackendProcess, backend_server
from tests.support.docker_engine import DockerEngine
from tests.support.processes import ManagedProcess, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def ota_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("ota-docker")) as backend:
        yield backend


class DaemonRestarter:
    """Restarts the private dockerd of the test session in place (same flags, same data)."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self.replacement: ManagedProcess | None = None

    def restart(self) -> None:
        run = Path(self.engine.base_url.removeprefix("unix://")).parent
        pid = int((run / "dockerd.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode() for part in handle.read().split(b"\0") if part]
        self.engine.client.close()  # its pooled connections would outlive the daemon (unclosed sockets)
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: _gone(pid), 60, what="dockerd stopped")
        if self.replacement is not None:
            self.replacement.stop(timeout=60)
        self.replacement = ManagedProcess(argv, run / "dockerd-restarted.log")
        wait_until(lambda: _pings(self.engine), 60, interval=0.5, what="dockerd back")

    def close(self) -> None:
        if self.replacement is not None:
            self.replacement.stop(timeout=60)


def _gone(pid: int) -> bool:
    """Exited (a zombie until the harness, its parent, reaps it)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@contextmanager
def docker_client(engine: DockerEngine) -> Iterator[Any]:
    """A short-lived client: pooled connections to a daemon that restarts would be left dangling."""
    import docker

    client = docker.DockerClient(base_url=engine.base_url, version="auto", timeout=60)
    try:
        yield client
    finally:
        client.close()


def _pings(engine: DockerEngine) -> bool:
    """GET /_ping over the socket. The socket is probed first: docker-py and httpcore both leak the socket
    of a refused connection (a ResourceWarning in some later test)."""
    import socket

    import httpx

    path = engine.base_url.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    transport = httpx.HTTPTransport(uds=path)
    try:
        with httpx.Client(transport=transport, timeout=5) as client:
            return client.get("http://docker/_ping").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def daemon(docker_engine: DockerEngine) -> Iterator[DaemonRestarter]:
    """Session-wide: a restarted daemon must keep serving later tests; stopped before the harness cleans up."""
    if not docker_engine.started_here:
        pytest.skip("restarting a Docker daemon this session did not start is not done")
    restarter = DaemonRestarter(docker_engine)
    yield restarter
    restarter.close()


def container(engine: DockerEngine, model: str, version: int) -> dict[str, Any] | None:
    """The container's inspect data, or None."""
    import docker.errors

    with docker_client(engine) as client:
        try:
            return client.containers.get(f"jetfleet-model-{model}-{version}").attrs  # type: ignore[no-any-return]
        except docker.errors.NotFound:
            return None


def remove(engine: DockerEngine, model: str, version: int) -> None:
    import docker.errors

    with docker_client(engine) as client, contextlib.suppress(docker.errors.NotFound):
        client.containers.get(f"jetfleet-model-{model}-{version}").remove(force=True)


def test_docker_executor_deploys_swaps_and_heals(ota_backend: BackendProcess, docker_engine: DockerEngine,
                                                 model_server_image: str, daemon: DaemonRestarter,
                                                 tmp_path: Path) -> None:
    import numpy as np

    model = unique_id("dense")
    node = Node(tmp_path, ota_backend.url, unique_id("jetson"), executor="docker", model_image=model_server_image,
                docker_host=docker_engine.base_url, ota_ready_timeout=120).start()
    try:
        wait_registered(ota_backend, node)
        push(ota_backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod",
             golden=golden_pair(tmp_path / "g1", seed=1))
        deploy(ota_backend, model, "prod", node.name)
        wait_state(ota_backend, model, node.name, version=1, state="committed", timeout=180)
        attrs = container(docker_engine, model, 1)
        assert attrs is not None
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert {m["Destination"]: m["RW"] for m in attrs["Mounts"]} == {"/model": False, "/model/engines": True}
        labels = attrs["Config"]["Labels"]
        assert labels["io.jetfleet.model"] == model and labels["io.jetfleet.model-version"] == "1"
        assert any(v == f"PathPrefix(`/v2/models/{model}`)" for k, v in labels.items() if k.endswith(".rule"))
        x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
        version, y = infer(node.endpoint, model, x)
        assert version == "1" and np.allclose(y, reference(1, x), rtol=1e-5)

        push(ota_backend, model, dense_model(tmp_path / "v2.onnx", seed=2), golden=golden_pair(tmp_path / "g2", seed=2))
        with Load(node.endpoint, model) as load:
            wait_until_some(load, 20)
            move_tag(ota_backend, model, "prod", 2)
            wait_state(ota_backend, model, node.name, version=2, state="committed", timeout=180)
            wait_until_some(load, len(load.versions) + 20)
        assert load.failures == []
        assert set(load.versions[load.versions.index("2"):]) == {"2"}
        wait_until(lambda: container(docker_engine, model, 1) is None, 60, what="old container removed")

        # a container that disappears is recreated by the next pass
        remove(docker_engine, model, 2)
        wait_until(lambda: _serves(node, model, "2"), 180, interval=0.5, what="recreated container serving")

        # a Docker daemon restart: the containers come back, the agent notices and serving resumes
        daemon.restart()
        wait_until(lambda: _serves(node, model, "2"), 180, interval=0.5, what="serving after the daemon restart")
        assert model_state(ota_backend, model, node.name)["version"] == 2  # type: ignore[index]
    finally:
        node.stop()
    for number in (1, 2):  # containers outlive the agent; clean them up for the next test
        remove(docker_engine, model, number)


def _serves(node: Node, model: str, version: str) -> bool:
    try:
        return infer(node.endpoint, model, np.ones((1, 4), dtype=np.float32))[0] == version
    except Exception:  # the server is (re)starting
        return False

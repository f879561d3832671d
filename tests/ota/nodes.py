"""Real agents with OTA enabled (process or docker executor, the real Traefik node router) for tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jetfleet.backend.admin_client import AdminClient
from jetfleet.traefik.binary import require_traefik
from tests.support.backend import BackendProcess
from tests.support.processes import ManagedProcess, free_port, jetfleet_cmd, subprocess_env, wait_until


def traefik_binary() -> str:
    return str(require_traefik())


class Node:
    """One agent process with its own state, models dir, router port and model port range."""

    def __init__(self, root: Path, backend_url: str, name: str, *, env: dict[str, str] | None = None,
                 wrap: Callable[[list[str]], list[str]] = list, **overrides: Any) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.router_port = free_port()
        first = free_port()
        self.config: dict[str, Any] = {
            "backend_url": backend_url, "device_id": name, "device_name": name,
            "state_dir": str(self.dir / "state"), "models_dir": str(self.dir / "models"),
            "log_file": str(self.dir / "agent.log"), "heartbeat_interval": 0.3, "metrics_port": 0,
            "executor": "process", "model_router_host": "127.0.0.1", "model_router_port": self.router_port,
            "model_router_api_port": free_port(), "model_router_binary": traefik_binary(),
            "model_port_range": [first, first + 40], "ota_interval": 0.3, "ota_drain_seconds": 0.3,
            "ota_disk_headroom_bytes": 0, **overrides,
        }
        self.env = env or {}
        self.wrap = wrap  # e.g. into a network namespace
        self.process: ManagedProcess | None = None
        self._previous: list[ManagedProcess] = []  # killed ones: their process groups are cleaned up in stop()
        self._starts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    @property
    def models_dir(self) -> Path:
        return Path(self.config["models_dir"])

    def start(self) -> Node:
        if self.process is not None:
            self._previous.append(self.process)
        self._starts += 1
        (self.dir / "config.json").write_text(json.dumps(self.config))
        argv = self.wrap(jetfleet_cmd("agent", "run", "--config", str(self.dir / "config.json")))
        self.process = ManagedProcess(argv,
                                      self.dir / f"stdout-{self._starts}.log", env=subprocess_env(**self.env))
        return self

    def stop(self) -> None:
        for process in [self.process, *self._previous]:
            if process is not None:
                process.stop(timeout=30)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill9()

    def log_of_start(self, start: int) -> str:
        """What the agent printed after its ``start``-th start (1 is the first)."""
        path = self.dir / f"stdout-{start}.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("stdout-*.log")))


def model_state(backend: BackendProcess, model: str, device: str) -> dict[str, Any] | None:
    with AdminClient(backend.url, backend.admin_token) as client:
        report = client.model_status(model)
    entry = next((d for d in report.devices if d.device_id == device), None)
    return entry.model_dump() if entry else None


def wait_state(backend: BackendProcess, model: str, device: str, timeout: float = 60,
               **expected: Any) -> dict[str, Any]:
    """Wait until the device reports ``expected`` (e.g. version=2, state="committed") for ``model``."""
    def matches() -> dict[str, Any] | None:
        state = model_state(backend, model, device)
        if state is not None and all(state.get(k) == v for k, v in expected.items()):
            return state
        return None

    try:
        return wait_until(matches, timeout, interval=0.2, what=f"{device} {model} {expected}")  # type: ignore[return-value]
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nlast state: {model_state(backend, model, device)}") from None


def admin(backend: BackendProcess) -> AdminClient:
    return AdminClient(backend.url, backend.admin_token)


def deploy(backend: BackendProcess, model: str, tag: str, *devices: str) -> None:
    with admin(backend) as client:
        client.deploy(model, tag, list(devices), all_devices=False)


def move_tag(backend: BackendProcess, model: str, tag: str, version: int) -> None:
    with admin(backend) as client:
        client.move_tag(model, tag, version)


def wait_registered(backend: BackendProcess, *nodes: Node) -> None:
    def registered(node: Node) -> bool:
        with backend.admin() as client:
            return client.get(f"/api/v1/edge-devices/{node.name}").status_code == 200

    for node in nodes:
        wait_until(lambda n=node: registered(n), 60, interval=0.2, what=f"{node.name} registered")  # type: ignore[misc]

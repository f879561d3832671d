"""What the executor needs from a model runtime; both runtimes serve ``jetfleet serve-model``."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jetfleet.agent.ota.observed import Instance
from jetfleet.errors import TemporaryError


@dataclass(frozen=True)
class LaunchSpec:
    name: str
    version: int
    model_dir: Path
    port: int
    bind_host: str


class ModelRuntime(Protocol):
    kind: str

    async def instances(self) -> list[Instance]:
        """Every instance this runtime manages, running or not."""

    async def start(self, spec: LaunchSpec) -> Instance:
        """Start ``spec`` (or restart its stopped instance on its own port); returns at once, not ready yet."""

    async def alive(self, instance: Instance) -> bool:
        """Whether the instance's server process still runs (a load failure ends it)."""

    async def stop(self, instance: Instance) -> None:
        """Stop (gracefully first) and remove the instance."""

    async def logs(self, instance: Instance) -> str:
        """The end of the instance's log, for failure messages."""

    async def close(self) -> None:
        """The agent stops: release resources (and stop instances that cannot outlive the agent)."""


def model_server_args(spec: LaunchSpec, model_dir: str) -> list[str]:
    return ["--model-dir", model_dir, "--name", spec.name, "--version", str(spec.version), "--port", str(spec.port),
            "--host", spec.bind_host, "--log-level", "warning"]


def free_port(port_range: tuple[int, int], used: Iterable[int], host: str) -> int:
    """The first port of ``port_range`` not used by an instance and free to bind on ``host``."""
    taken = set(used)
    for port in range(port_range[0], port_range[1] + 1):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise TemporaryError(f"no free port in model_port_range {port_range[0]}-{port_range[1]}", delay=10)

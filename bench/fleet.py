"""A local fleet on loopback for the demo and the benchmarks: a control plane and agents as real processes.

Every process is a :class:`~jetfleet.bench.procs.ManagedProcess` (own session, log file in the work dir) and is
stopped by PID, newest first, in :meth:`LocalFleet.stop_all`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jetfleet.bench.procs import ManagedProcess, answers_ok, free_port, jetfleet_argv, wait_until
from jetfleet.traefik.binary import find_traefik


class LocalFleet:
    """Named ``jetfleet`` processes in one work dir, and the CLI pointed at their control plane."""

    def __init__(self, work: Path, admin_token: str, env: Mapping[str, str] | None = None) -> None:
        self.work = work
        self.admin_token = admin_token
        self.env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        self.processes: list[tuple[str, ManagedProcess]] = []
        self.backend_url = ""

    def start(self, name: str, *args: str) -> ManagedProcess:
        process = ManagedProcess(jetfleet_argv(*args), self.work / f"{name}.log", env=self.env, cwd=self.work)
        self.processes.append((name, process))
        return process

    def start_backend(self, *extra: str, timeout: float = 60.0) -> ManagedProcess:
        """The control plane on a free loopback port, SQLite in the work dir; returns once it answers."""
        port = free_port()
        self.backend_url = f"http://127.0.0.1:{port}"
        process = self.start("backend", "backend", "serve", "--port", str(port), "--database-url",
                             f"sqlite:///{self.work / 'backend.db'}", "--admin-token", self.admin_token,
                             "--data-dir", str(self.work / "data"), *extra)
        process.wait_http(f"{self.backend_url}/health", timeout)
        return process

    def start_agent(self, name: str, **config: Any) -> ManagedProcess:
        """An agent with its own dir ``work/name`` (state, models, log, config.json); ``config`` adds keys."""
        node_dir = self.work / name
        node_dir.mkdir(parents=True, exist_ok=True)
        settings = {"backend_url": self.backend_url, "device_id": name, "device_name": name,
                    "state_dir": str(node_dir / "state"), "log_file": str(node_dir / "agent.log"),
                    "heartbeat_interval": 1, "metrics_port": 0, **config}
        (node_dir / "config.json").write_text(json.dumps(settings, indent=2))
        return self.start(f"agent-{name}", "agent", "run", "--config", str(node_dir / "config.json"))

    def wait_registered(self, names: list[str], timeout: float = 60.0) -> None:
        def registered() -> bool:
            return {d["device_id"] for d in json.loads(self.cli("fleet", "status", "--json"))} >= set(names)

        wait_until(registered, timeout, interval=0.3, what=f"{', '.join(names)} registered")

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, not a clean stop."""
        for process_name, process in self.processes:
            if process_name == name:
                process.kill9()

    def stop_all(self) -> list[tuple[str, int | None]]:
        """Stop every process, newest first; returns each one's exit code (negative: the signal)."""
        return [(name, process.stop(20)) for name, process in reversed(self.processes)]

    def cli(self, *args: str, check: bool = True, columns: int = 160) -> str:
        env = {**self.env, "JETFLEET_BACKEND_URL": self.backend_url, "JETFLEET_TOKEN": self.admin_token,
               "COLUMNS": str(columns)}
        result = subprocess.run(jetfleet_argv(*args), capture_output=True, text=True, env=env, cwd=self.work,
                                timeout=300)
        if check and result.returncode != 0:
            raise RuntimeError(f"jetfleet {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def healthy(self) -> bool:
        return answers_ok(f"{self.backend_url}/health")


def ota_agent_config(node_dir: Path, *, ota_interval: float = 0.5, drain_seconds: float = 0.5) -> dict[str, Any]:
    """The OTA keys of a local agent: process executor, its own node router and a range of model ports."""
    first = free_port()
    traefik = find_traefik()
    return {"executor": "process", "models_dir": str(node_dir / "models"), "model_router_host": "127.0.0.1",
            "model_router_port": free_port(), "model_router_api_port": free_port(),
            "model_router_binary": str(traefik) if traefik else None, "model_port_range": [first, first + 40],
            "ota_interval": ota_interval, "ota_drain_seconds": drain_seconds, "ota_disk_headroom_bytes": 0}

"""OTA demo: push a small model, deploy it by tag to two local agents, infer, move the tag, show the swap.

Standalone (starts and stops its own control plane and two agents, process executor, on loopback)::

    python -m jetfleet.bench.demo_ota [--work DIR]

or from the main demo: merge :func:`ota_agent_config` into each agent's config and call :func:`run`
with a function that runs ``jetfleet`` CLI commands against the control plane. Everything shown is a
``jetfleet models ...`` command an operator would type.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jetfleet.bench.loopback import free_port
from jetfleet.traefik.binary import find_traefik

ROOT = Path.cwd()  # scripts/demo.sh runs from the checkout
ADMIN_TOKEN = "demo-admin-token"
MODEL = "demo-dense"
Cli = Callable[..., str]


def ota_agent_config(node_dir: Path) -> dict[str, object]:
    """The OTA keys of a demo agent: process executor, its own node router and model ports."""
    first = free_port()
    traefik = find_traefik()
    return {"executor": "process", "models_dir": str(node_dir / "models"), "model_router_host": "127.0.0.1",
            "model_router_port": free_port(), "model_router_api_port": free_port(),
            "model_router_binary": str(traefik) if traefik else None, "model_port_range": [first, first + 20],
            "ota_interval": 0.5, "ota_drain_seconds": 0.5, "ota_disk_headroom_bytes": 0}


def say(text: str) -> None:
    from rich.console import Console

    Console().rule(text)


def run(cli: Cli, work: Path, devices: list[str]) -> None:
    """The OTA part of the demo, against a running control plane and agents ``devices``."""
    from jetfleet.bench.testmodels import write_dense_onnx

    say("5. push a small ONNX model as version 1 of 'demo-dense', tagged 'prod'")
    v1 = write_dense_onnx(work / "dense-v1.onnx", features=4, outputs=3, seed=1)
    print(cli("models", "push", str(v1), "--name", MODEL, "--tag", "prod"), end="")
    say(f"6. deploy demo-dense:prod to {', '.join(devices)}")
    print(cli("models", "deploy", f"{MODEL}:prod", *[arg for d in devices for arg in ("--device", d)]), end="")
    print(cli("models", "wait", MODEL, "--version", "1", "--timeout", "120"), end="")
    print(cli("models", "status", MODEL), end="")
    status = json.loads(cli("models", "status", MODEL, "--json"))
    endpoint = status["devices"][0]["endpoint"]
    say(f"7. inference through {devices[0]}'s stable endpoint {endpoint}")
    print(cli("models", "infer", MODEL, "--url", endpoint, "--data", "[[1, 2, 3, 4]]"), end="")
    say("8. push version 2 and move the tag: both devices swap (blue/green, no failed requests)")
    v2 = write_dense_onnx(work / "dense-v2.onnx", features=4, outputs=3, seed=2)
    print(cli("models", "push", str(v2), "--name", MODEL), end="")
    print(cli("models", "tag", f"{MODEL}:prod", "2"), end="")
    print(cli("models", "wait", MODEL, "--version", "2", "--timeout", "120"), end="")
    print(cli("models", "status", MODEL), end="")
    print(cli("models", "infer", MODEL, "--url", endpoint, "--data", "[[1, 2, 3, 4]]"), end="")


class Fleet:
    """The standalone demo's processes, stopped by PID at the end."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[subprocess.Popen[bytes]] = []
        self.backend_url = ""
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def start(self, name: str, *args: str) -> None:
        with open(self.work / f"{name}.log", "wb") as log:
            self.processes.append(subprocess.Popen([sys.executable, "-m", "jetfleet", *args], stdout=log,
                                                   stderr=subprocess.STDOUT, cwd=self.work, env=self.env,
                                                   start_new_session=True))

    def cli(self, *args: str) -> str:
        env = {**self.env, "JETFLEET_BACKEND_URL": self.backend_url, "JETFLEET_TOKEN": ADMIN_TOKEN, "COLUMNS": "150"}
        result = subprocess.run([sys.executable, "-m", "jetfleet", *args], capture_output=True, text=True, env=env,
                                cwd=self.work, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"jetfleet {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def stop_all(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (RuntimeError, ValueError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def standalone(work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(work)
    devices = ["jetson-a", "jetson-b"]
    try:
        port = free_port()
        fleet.backend_url = f"http://127.0.0.1:{port}"
        fleet.start("backend", "backend", "serve", "--port", str(port), "--database-url",
                    f"sqlite:///{work / 'backend.db'}", "--admin-token", ADMIN_TOKEN, "--data-dir", str(work / "data"))
        wait_for("the control plane", lambda: bool(fleet.cli("fleet", "status", "--json")))
        for name in devices:
            node = work / name
            node.mkdir(exist_ok=True)
            config = {"backend_url": fleet.backend_url, "device_id": name, "device_name": name,
                      "state_dir": str(node / "state"), "log_file": str(node / "agent.log"),
                      "heartbeat_interval": 1, "metrics_port": 0, **ota_agent_config(node)}
            (node / "config.json").write_text(json.dumps(config, indent=2))
            fleet.start(f"agent-{name}", "agent", "run", "--config", str(node / "config.json"))
        wait_for("both agents registered", lambda: len(json.loads(fleet.cli("fleet", "status", "--json"))) == 2)
        run(fleet.cli, work, devices)
        say("demo finished: stopping the fleet")
        return 0
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        fleet.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".demo" / "ota", help="working directory")
    raise SystemExit(standalone(parser.parse_args().work))

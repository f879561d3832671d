"""The README demo: a local fleet on loopback on the embedded SQLite default, shown working, then stopped.

Run through ``bash scripts/demo.sh`` (which creates the venv first). Every process it starts is stopped
by PID when it ends, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console

from jetfleet.bench import demo_ota
from jetfleet.bench.loopback import free_port

ROOT = Path.cwd()  # scripts/demo.sh runs from the checkout

WORK = Path(os.environ.get("JETFLEET_DEMO_DIR", ROOT / ".demo"))
ADMIN_TOKEN = "demo-admin-token"
console = Console()


class Fleet:
    """The processes of the demo; all stopped by PID in ``stop_all``."""

    def __init__(self) -> None:
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.backend_url = ""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(WORK / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "jetfleet", *args], stdout=log, stderr=subprocess.STDOUT,
                                cwd=WORK, env=env, start_new_session=True)
        self.processes.append((name, proc))
        console.print(f"  started [bold]{name}[/] (pid {proc.pid}), log: .demo/{name}.log")
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, not a clean stop."""
        for proc_name, proc in self.processes:
            if proc_name == name and proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for _name, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.processes):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            code = proc.returncode
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            console.print(f"  stopped {name} ({how})")

    def cli(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, "JETFLEET_BACKEND_URL": self.backend_url,
               "JETFLEET_TOKEN": ADMIN_TOKEN, "COLUMNS": "160"}
        result = subprocess.run([sys.executable, "-m", "jetfleet", *args], capture_output=True, text=True, env=env,
                                cwd=WORK, timeout=300)
        if check and result.returncode != 0:
            raise RuntimeError(f"jetfleet {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, RuntimeError, ValueError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def start_backend(fleet: Fleet) -> None:
    console.rule("1. control plane (SQLite, embedded default)")
    port = free_port()
    fleet.backend_url = f"http://127.0.0.1:{port}"
    fleet.start("backend", "backend", "serve", "--port", str(port), "--database-url",
                f"sqlite:///{WORK / 'backend.db'}", "--admin-token", ADMIN_TOKEN, "--data-dir", str(WORK / "data"))
    wait_for("the control plane", lambda: httpx.get(fleet.backend_url + "/health").status_code == 200)
    console.print(f"  {fleet.backend_url}/health -> {httpx.get(fleet.backend_url + '/health').json()}")


def start_voice_servers(fleet: Fleet, names: list[str]) -> dict[str, str]:
    """One voice server per node (robot 'none': a dry run), started early: loading Whisper takes a while."""
    urls = {}
    for name in names:
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        fleet.start(f"voice-{name}", "voice", "serve", "--robot", "none", "--host", "127.0.0.1", "--port",
                    str(port), "--node-name", name, "--language", "nl-NL", "--cache-dir",
                    str(ROOT / ".cache" / "voice-models"))
    return urls


def start_agents(fleet: Fleet, names: list[str], voice_urls: dict[str, str]) -> dict[str, int]:
    console.rule("2. two host agents (own state dirs), each with a voice server")
    metrics_ports = {}
    for name in names:
        node_dir = WORK / name
        (node_dir / "models").mkdir(parents=True, exist_ok=True)
        metrics_ports[name] = free_port()
        config = {"backend_url": fleet.backend_url, "device_name": name, "device_id": name,
                  "state_dir": str(node_dir / "state"), "log_file": str(node_dir / "agent.log"),
                  "heartbeat_interval": 1, "metrics_port": metrics_ports[name], "metrics_host": "127.0.0.1",
                  "services": [{"role": "voice", "url": voice_urls[name]}], **demo_ota.ota_agent_config(node_dir)}
        (node_dir / "config.json").write_text(json.dumps(config, indent=2))
        fleet.start(f"agent-{name}", "agent", "run", "--config", str(node_dir / "config.json"))
    return metrics_ports


def show_fleet(fleet: Fleet, names: list[str]) -> None:
    console.rule("3. jetfleet fleet status")

    def all_online() -> bool:
        devices = json.loads(fleet.cli("fleet", "status", "--json"))
        online = {d["device_id"] for d in devices if d["status"] == "online" and d["metrics"]}
        return set(names) <= online

    wait_for("both agents online with metrics", all_online)
    sys.stdout.write(fleet.cli("fleet", "status"))


def show_exporter(metrics_port: int, name: str) -> None:
    console.rule(f"4. Prometheus exporter of {name}")
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    wanted = ("jetfleet_cpu_utilization_ratio", "jetfleet_memory_used_bytes", "jetfleet_heartbeats_total",
              "jetfleet_device_info", "jetfleet_collector_up")
    for line in text.splitlines():
        if line.startswith(wanted):
            sys.stdout.write(f"  {line}\n")


def voice_commands(fleet: Fleet, voice_urls: dict[str, str]) -> None:
    console.rule("9. voice: Dutch commands to jetson-a's voice server (robot 'none': a dry run)")
    url = voice_urls["jetson-a"]
    wait_for("the voice servers to load Whisper", lambda: all(
        httpx.get(u + "/health").status_code == 200 for u in voice_urls.values()), timeout=300)
    sys.stdout.write(fleet.cli("voice", "send", "--jetson-url", url, "--command", "sta op"))
    if shutil.which("espeak-ng") and shutil.which("sox"):
        console.print("  the same command as synthesized speech (espeak-ng -> Whisper):")
        sys.stdout.write(fleet.cli("voice", "send", "--jetson-url", url, "--say", "sta op", check=False))
    else:
        console.print("  (espeak-ng and sox are not installed: skipping the spoken command)")


def gateway_kill(fleet: Fleet, voice_urls: dict[str, str]) -> None:
    console.rule("10. gateway: both voice nodes behind Traefik; one is killed mid-stream")
    from jetfleet.bench.gateway_demo import DemoNode, run_gateway_demo

    nodes = [DemoNode(name, url) for name, url in voice_urls.items()]
    report = run_gateway_demo(nodes, kill=lambda name: fleet.kill(f"voice-{name}"), workdir=WORK / "gateway",
                              console=console)
    if report.failed:
        raise RuntimeError(f"{report.failed} of {report.sent} commands failed through the gateway")


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    for stale in WORK.glob("*"):
        subprocess.run(["rm", "-rf", str(stale)], check=True)
    fleet = Fleet()
    names = ["jetson-a", "jetson-b"]
    try:
        start_backend(fleet)
        voice_urls = start_voice_servers(fleet, names)
        ports = start_agents(fleet, names, voice_urls)
        show_fleet(fleet, names)
        show_exporter(ports["jetson-a"], "jetson-a")
        demo_ota.run(fleet.cli, WORK, names)
        voice_commands(fleet, voice_urls)
        gateway_kill(fleet, voice_urls)
        console.rule("[green]demo finished: stopping the fleet")
        return 0
    except (RuntimeError, KeyboardInterrupt) as exc:
        console.print(f"[red]demo failed: {exc}[/]")
        return 1
    finally:
        fleet.stop_all()


if __name__ == "__main__":
    raise SystemExit(main())

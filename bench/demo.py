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
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console

from jetfleet.bench import demo_ota
from jetfleet.bench.fleet import LocalFleet, ota_agent_config
from jetfleet.bench.procs import free_port, wait_until
from jetfleet.errors import PermanentError

ROOT = Path.cwd()  # scripts/demo.sh runs from the checkout

WORK = Path(os.environ.get("JETFLEET_DEMO_DIR", ROOT / ".demo"))
ADMIN_TOKEN = "demo-admin-token"
console = Console()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    wait_until(check, timeout, interval=0.3, what=what)


def start_backend(fleet: LocalFleet) -> None:
    console.rule("1. control plane (SQLite, embedded default)")
    process = fleet.start_backend()
    console.print(f"  started [bold]backend[/] (pid {process.pid}), log: {process.log_path}")
    console.print(f"  {fleet.backend_url}/health -> {httpx.get(fleet.backend_url + '/health').json()}")


def start_voice_servers(fleet: LocalFleet, names: list[str]) -> dict[str, str]:
    """One voice server per node (robot 'none': a dry run), started early: loading Whisper takes a while."""
    urls = {}
    for name in names:
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        process = fleet.start(f"voice-{name}", "voice", "serve", "--robot", "none", "--host", "127.0.0.1",
                              "--port", str(port), "--node-name", name, "--language", "nl-NL", "--cache-dir",
                              str(ROOT / ".cache" / "voice-models"))
        console.print(f"  started [bold]voice-{name}[/] (pid {process.pid}), log: {process.log_path}")
    return urls


def start_agents(fleet: LocalFleet, names: list[str], voice_urls: dict[str, str]) -> dict[str, int]:
    console.rule("2. two host agents (own state dirs), each with a voice server")
    metrics_ports = {}
    for name in names:
        metrics_ports[name] = free_port()
        process = fleet.start_agent(name, metrics_port=metrics_ports[name], metrics_host="127.0.0.1",
                                    services=[{"role": "voice", "url": voice_urls[name]}],
                                    **ota_agent_config(WORK / name))
        console.print(f"  started [bold]agent-{name}[/] (pid {process.pid}), log: {process.log_path}")
    return metrics_ports


def show_fleet(fleet: LocalFleet, names: list[str]) -> None:
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


def voice_commands(fleet: LocalFleet, voice_urls: dict[str, str]) -> None:
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


def gateway_kill(fleet: LocalFleet, voice_urls: dict[str, str]) -> None:
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
    fleet = LocalFleet(WORK, ADMIN_TOKEN)
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
    except (RuntimeError, KeyboardInterrupt, PermanentError) as exc:
        console.print(f"[red]demo failed: {exc}[/]")
        return 1
    finally:
        for name, code in fleet.stop_all():
            how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
            console.print(f"  stopped {name} ({how})")


if __name__ == "__main__":
    raise SystemExit(main())

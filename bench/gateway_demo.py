"""The README demo's gateway step: voice nodes behind Traefik, a stream of commands, one node killed.

``jetfleet.bench.demo`` starts the voice nodes (robot ``none``) and calls ``run_gateway_demo`` with a way
to kill one of them; this starts ``jetfleet gateway run`` on free loopback ports, sends ``count``
commands at ``rate`` per second through the gateway, kills the node a third of the way in, and returns
(and prints) what happened: every command's outcome, who served it, and when Traefik dropped the node.
The gateway process is stopped by PID before it returns.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from rich.console import Console

from jetfleet.bench.load import Outcome, Request, failures, open_loop, share_by_node
from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv, wait_until
from jetfleet.errors import PermanentError


@dataclass(frozen=True)
class DemoNode:
    name: str
    url: str  # the voice server, e.g. http://127.0.0.1:8801


@dataclass(frozen=True)
class DemoReport:
    sent: int
    failed: int
    served: dict[str, int]
    served_after_kill: dict[str, int]
    killed: str
    removed_after_s: float | None  # from the kill until Traefik's API showed the node DOWN



def _commands(index: int) -> dict[str, str]:
    return {"command": ("sta op", "ga liggen", "hallo")[index % 3]}


def run_gateway_demo(nodes: Sequence[DemoNode], kill: Callable[[str], None], workdir: Path, *, rate: float = 20.0,
                     count: int = 300, strategy: str = "wrr", console: Console | None = None) -> DemoReport:
    """Run the demo; ``kill(name)`` must crash that node (e.g. SIGKILL its process)."""
    out = console or Console()
    ports = {key: free_port() for key in ("port", "api_port", "metrics_port", "health_port")}
    # The demo's nodes drive no robot, so re-running a command that was in flight on the killed node is harmless.
    fleet = {"gateway": {"host": "127.0.0.1", "metrics_host": "127.0.0.1", "strategy": strategy,
                         "access_log": False, "retry_in_flight": ["voice"], **ports},
             "nodes": [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes]}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "fleet.yml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    gateway_url, api = f"http://127.0.0.1:{ports['port']}", f"http://127.0.0.1:{ports['api_port']}"
    process = ManagedProcess(jetfleet_argv("gateway", "run", "--fleet", str(workdir / "fleet.yml"), "--work-dir",
                                           str(workdir / "traefik")), workdir / "gateway.log")
    try:
        _wait_all_up(api, len(nodes), process)
        out.print(f"  gateway {gateway_url} (Traefik API {api}) balances {', '.join(n.name for n in nodes)}")
        victim = nodes[len(nodes) // 2]
        return _stream_and_kill(gateway_url, api, victim, kill, rate, count, out)
    finally:
        process.stop(15)


def _wait_all_up(api: str, expected: int, process: ManagedProcess, timeout: float = 60.0) -> None:
    def all_up() -> bool:
        if not process.alive():
            raise PermanentError(f"the gateway exited with code {process.returncode}:\n{process.output()[-2000:]}")
        status = httpx.get(f"{api}/api/http/services/voice@file", timeout=2).json().get("serverStatus") or {}
        return len(status) == expected and all(s == "UP" for s in status.values())

    wait_until(all_up, timeout, interval=0.2, what="every voice node UP behind the gateway")


def _stream_and_kill(gateway_url: str, api: str, victim: DemoNode, kill: Callable[[str], None], rate: float,
                     count: int, out: Console) -> DemoReport:
    outcomes: list[Outcome] = []
    epoch = time.perf_counter() + 0.2
    request = Request("POST", gateway_url + "/api/voice/listen", json=_commands)
    thread = threading.Thread(target=lambda: outcomes.extend(asyncio.run(
        open_loop(request, rate=rate, count=count, epoch=epoch))), daemon=True)
    out.print(f"  sending {count} commands at {rate:.0f}/s through the gateway ...")
    thread.start()
    kill_at = count / rate / 3
    time.sleep(max(0.0, epoch + kill_at - time.perf_counter()))
    kill(victim.name)
    out.print(f"  [bold red]killed {victim.name}[/] (SIGKILL) at t={kill_at:.1f}s")
    removed = _seconds_until_down(api, victim.url)
    thread.join(count / rate + 60)
    after = share_by_node(o for o in outcomes if o.sent_at > kill_at + (removed or 1.0) + 0.2)
    report = DemoReport(len(outcomes), len(failures(outcomes)), dict(share_by_node(outcomes)), dict(after),
                        victim.name, removed)
    _print_report(report, out)
    return report


def _seconds_until_down(api: str, url: str, timeout: float = 10.0) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            status = httpx.get(f"{api}/api/http/services/voice@file", timeout=2).json().get("serverStatus") or {}
        except (httpx.HTTPError, ValueError):
            status = {}
        if status.get(url) == "DOWN":
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def _print_report(report: DemoReport, out: Console) -> None:
    removed = f"{report.removed_after_s:.2f}s" if report.removed_after_s is not None else "not seen"
    out.print(f"  Traefik marked {report.killed} DOWN {removed} after the kill")
    out.print(f"  served per node: {report.served}; after the kill: {report.served_after_kill}")
    style = "green" if report.failed == 0 else "red"
    out.print(f"  [bold {style}]{report.sent} commands sent, {report.failed} failed[/]")

"""``jetfleet gateway ...`` commands: render, run, monitor, health; ``jetfleet bench gateway``."""

from __future__ import annotations

import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from jetfleet.clioptions import CaBundle, JsonOutput, Token
from jetfleet.errors import ConfigError

if TYPE_CHECKING:
    from jetfleet.gateway.fleet import GatewaySettings
    from jetfleet.gateway.monitor import NodeTarget, Snapshot

gateway_app = typer.Typer(help="Traefik gateway across Jetsons.", no_args_is_help=True)

FleetFile = Annotated[Path | None, typer.Option("--fleet", help="Fleet file (YAML): nodes, roles, gateway settings.")]
FromBackend = Annotated[str | None, typer.Option("--from-backend", envvar="JETFLEET_BACKEND_URL", show_default=False,
                                                 help="Control plane URL: route to the live registry instead.")]
SettingsFile = Annotated[Path | None, typer.Option(
    "--settings", help="With --from-backend: a YAML file with only a 'gateway:' section (ports, strategy, ...).")]


def _one_source(fleet: Path | None, from_backend: str | None) -> None:
    if (fleet is None) == (from_backend is None):
        raise ConfigError("give exactly one of --fleet FILE or --from-backend URL", key="--fleet/--from-backend")
    if fleet is None and not from_backend:
        raise ConfigError("the control plane URL is empty", key="--from-backend")


def _settings(settings_file: Path | None) -> GatewaySettings:
    from jetfleet.gateway.fleet import GatewaySettings, load_settings

    return load_settings(settings_file) if settings_file is not None else GatewaySettings()


@gateway_app.command("render")
def render(
    fleet: FleetFile = None,
    from_backend: FromBackend = None,
    token: Token = "",
    ca_bundle: CaBundle = None,
    settings_file: SettingsFile = None,
    out: Path | None = typer.Option(None, "--out", help="Write the files here instead of printing them."),
    config_path: str | None = typer.Option(None, help="Path of the dynamic file as Traefik will see it "
                                                      "(e.g. inside a container); default: the written file."),
) -> None:
    """Render Traefik's static flags and dynamic config (validated), for a fleet file or the live registry."""
    import yaml

    from jetfleet.gateway.fleet import load_fleet
    from jetfleet.gateway.sources import backend_run, fleet_run

    _one_source(fleet, from_backend)
    file_name = "dynamic.yml" if fleet is not None else "health.yml"
    target = Path(config_path) if config_path else (out.resolve() / file_name if out else Path(file_name))
    snapshot = None
    if fleet is not None:
        plan = fleet_run(load_fleet(fleet), target)
    else:
        plan, snapshot = backend_run(str(from_backend), token, _settings(settings_file), target, ca_bundle)
    files = {file_name: yaml.safe_dump(plan.file_config.dump(), sort_keys=False),
             "traefik.flags": "\n".join(plan.flags) + "\n"}
    if snapshot is not None:
        files["registry-snapshot.yml"] = yaml.safe_dump(snapshot.dump(), sort_keys=False)
    if out is None:
        for name, text in files.items():
            sys.stdout.write(f"# --- {name} ---\n" + "".join(f"# {line}\n" if name == "traefik.flags" else f"{line}\n"
                                                              for line in text.splitlines()))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")


@gateway_app.command("run")
def run(
    fleet: FleetFile = None,
    from_backend: FromBackend = None,
    token: Token = "",
    ca_bundle: CaBundle = None,
    settings_file: SettingsFile = None,
    work_dir: Path | None = typer.Option(None, help="Where to write Traefik's config (default: a temporary dir)."),
    traefik: str | None = typer.Option(None, help="Traefik binary (default: 'traefik' on PATH or in this venv)."),
) -> None:
    """Run the real Traefik with the rendered config until SIGTERM/Ctrl-C (plus the gateway's /health)."""
    from jetfleet.gateway.fleet import load_fleet
    from jetfleet.gateway.runner import run_gateway
    from jetfleet.gateway.sources import backend_run, fleet_run
    from jetfleet.traefik.binary import require_traefik

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _one_source(fleet, from_backend)
    with tempfile.TemporaryDirectory(prefix="jetfleet-gateway-") as tmp:
        directory = work_dir or Path(tmp)
        if fleet is not None:
            plan = fleet_run(load_fleet(fleet), directory.resolve() / "dynamic.yml")
        else:
            plan, _ = backend_run(str(from_backend), token, _settings(settings_file),
                                  directory.resolve() / "health.yml", ca_bundle)
        code = run_gateway(plan, str(require_traefik(Path(traefik) if traefik else None, key="--traefik")))
    raise typer.Exit(code)


@gateway_app.command("monitor")
def monitor(
    fleet: FleetFile = None,
    from_backend: FromBackend = None,
    token: Token = "",
    ca_bundle: CaBundle = None,
    settings_file: SettingsFile = None,
    once: bool = typer.Option(False, "--once", help="Print one snapshot and exit."),
    as_json: JsonOutput = False,
    interval: float = typer.Option(5.0, min=0.5, max=3600, help="Seconds between refreshes."),
    traefik_api: str | None = typer.Option(None, help="Traefik API URL (default: from the gateway settings)."),
    metrics_url: str | None = typer.Option(None, help="Traefik /metrics URL (default: from the gateway settings)."),
) -> None:
    """Live table of every Jetson (voice status) and of Traefik's view (servers up, requests, errors)."""
    import json

    from jetfleet.gateway.monitor import collect

    _one_source(fleet, from_backend)
    targets, settings = _monitor_targets(fleet, from_backend, token, ca_bundle, settings_file)
    api_url = traefik_api or f"http://{_loopback(settings.api_host)}:{settings.api_port}"
    metrics = metrics_url or f"http://{_loopback(settings.metrics_host)}:{settings.metrics_port}/metrics"

    def snapshot() -> Snapshot:
        return collect(targets(), api_url, metrics)

    stop = _stop_on_signals()
    if as_json:
        while True:
            print(json.dumps(snapshot().to_json()), flush=True)
            if once or stop.wait(interval):
                return
    _live_tables(snapshot, once=once, interval=interval, stop=stop)


def _monitor_targets(fleet: Path | None, from_backend: str | None, token: str, ca_bundle: Path | None,
                     settings_file: Path | None) -> tuple[Callable[[], list[NodeTarget]], GatewaySettings]:
    from jetfleet.gateway.fleet import load_fleet
    from jetfleet.gateway.monitor import targets_from_devices, targets_from_fleet
    from jetfleet.gateway.sources import fetch_devices

    if fleet is not None:
        loaded = load_fleet(fleet)
        return (lambda: targets_from_fleet(loaded)), loaded.gateway

    def registry_targets() -> list[NodeTarget]:
        return targets_from_devices(fetch_devices(str(from_backend), token, ca_bundle))

    return registry_targets, _settings(settings_file)


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _stop_on_signals() -> threading.Event:
    """Set on Ctrl-C (SIGINT) or SIGTERM; the command ends at its next check.

    Not KeyboardInterrupt: a Ctrl-C that lands while a snapshot's ``asyncio.run`` closes its HTTP client
    (a shielded close) could be lost, and the command went on until killed.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _live_tables(snapshot: Callable[[], Snapshot], *, once: bool, interval: float, stop: threading.Event) -> None:
    from rich.console import Console
    from rich.live import Live

    from jetfleet.gateway.monitor_table import snapshot_tables

    console = Console()
    if once:
        console.print(snapshot_tables(snapshot()))
        return
    if not console.is_terminal:  # a log or a pipe: one table per interval (Live would print only at exit)
        while True:
            console.print(snapshot_tables(snapshot()))
            if stop.wait(interval):
                return
    with Live(snapshot_tables(snapshot()), console=console, auto_refresh=False) as live:
        while not stop.wait(interval):
            live.update(snapshot_tables(snapshot()), refresh=True)


@gateway_app.command("health")
def health(
    port: int = typer.Option(8890, help="Port to serve GET /health on (loopback)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    traefik_api: str = typer.Option("http://127.0.0.1:8080", help="Traefik API URL."),
) -> None:
    """Serve only the gateway's /health (every backend from Traefik's API), e.g. next to a Traefik container."""
    from jetfleet.gateway.health import HealthServer

    server = HealthServer(host, port, traefik_api)
    stop = _stop_on_signals()
    server.start()
    print(f"gateway health on http://{host}:{server.port}/health (Traefik API {traefik_api})", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")

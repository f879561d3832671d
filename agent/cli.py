"""``jetfleet agent ...`` commands (the host agent) and ``jetfleet serve-model``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from agent.config import DEFAULT_CONFIG_PATH, AgentConfig
from jetfleet.cliapp import bench_app

agent_app = typer.Typer(help="Host agent: register, heartbeat, metrics, OTA models.", no_args_is_help=True)


@agent_app.command("run")
def run(
    config: Path = typer.Option(DEFAULT_CONFIG_PATH, "--config", "-c", help="Agent config file (JSON)."),
    once: bool = typer.Option(False, "--once", help="Register if needed, send one heartbeat, print it, exit."),
) -> None:
    """Run the host agent (under systemd: jetson-client.service)."""
    import asyncio

    from agent.config import load_config
    from agent.logs import setup_logging

    settings = load_config(config, os.environ)
    setup_logging(settings.log_level, None if once else settings.log_file,
                  journal_stream=os.environ.get("JOURNAL_STREAM"))
    if once:
        _run_once(settings)
        return
    from agent.runtime import run_agent

    _skip_charset_detection()
    asyncio.run(run_agent(settings))


def _skip_charset_detection() -> None:
    # The Docker SDK's requests imports a character-set detector (charset_normalizer: 3 MB of RSS) that it
    # uses only for bodies without a declared encoding, falling back to UTF-8 without one; the Engine API
    # speaks JSON. The agent lives on small devices with a memory budget (docs/benchmarks.md).
    import sys
    import warnings

    for name in ("charset_normalizer", "chardet"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection dependency")


def _run_once(settings: AgentConfig) -> None:
    import asyncio

    from agent.runtime import run_once
    from jetfleet.errors import JetfleetError

    try:
        device_id, result = asyncio.run(run_once(settings))
    except JetfleetError as exc:
        typer.echo(f"error: heartbeat failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"device {device_id}: heartbeat accepted by {settings.backend_url} ({result.request_bytes} bytes)")
    if result.response is None:
        typer.echo("desired state unchanged")
        return
    typer.echo(f"heartbeat interval: {result.response.config.heartbeat_interval:g}s")
    typer.echo(f"pending model updates: {len(result.response.ota)}")
    for item in result.response.ota:
        typer.echo(f"  {item.model}: {item.current_version or '-'} -> v{item.version}")


@bench_app.command("agent")
def bench_agent(
    interval: float = typer.Option(1.0, min=0.1, max=3600, help="Heartbeat interval of the measured agent (s)."),
    duration: float = typer.Option(60.0, min=5, max=3600, help="Seconds to measure (bounded)."),
    host_root: Path = typer.Option(Path("/"), help="Host root for the metrics (e.g. a Jetson fixture tree)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Agent footprint: RSS and CPU over a run, and the heartbeat request size."""
    from agent.bench import footprint_dict, measure
    from jetfleet.benchout import print_result

    result = measure(interval=interval, duration=duration, host_root=host_root)
    print_result("jetfleet bench agent", footprint_dict(result), as_json=as_json)


def register(app: typer.Typer) -> None:
    from agent import metrics_cli
    from agent.modelserver import cli as modelserver_cli
    from agent.ota import cli as ota_cli

    metrics_cli.add_commands(agent_app)
    app.add_typer(agent_app, name="agent")
    modelserver_cli.register(app)
    ota_cli.register(app)

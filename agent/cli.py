"""``jetfleet agent ...`` commands (the host agent) and ``jetfleet serve-model``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from jetfleet.agent.config import DEFAULT_CONFIG_PATH, AgentConfig

agent_app = typer.Typer(help="Host agent: register, heartbeat, metrics, OTA models.", no_args_is_help=True)


@agent_app.command("run")
def run(
    config: Path = typer.Option(DEFAULT_CONFIG_PATH, "--config", "-c", help="Agent config file (JSON)."),
    once: bool = typer.Option(False, "--once", help="Register if needed, send one heartbeat, print it, exit."),
) -> None:
    """Run the host agent (under systemd: jetson-client.service)."""
    import asyncio

    from jetfleet.agent.config import load_config
    from jetfleet.agent.logs import setup_logging

    settings = load_config(config, os.environ)
    setup_logging(settings.log_level, None if once else settings.log_file,
                  journal_stream=os.environ.get("JOURNAL_STREAM"))
    if once:
        _run_once(settings)
        return
    from jetfleet.agent.daemon import run_agent

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

    from jetfleet.agent.daemon import run_once
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


def register(app: typer.Typer) -> None:
    from jetfleet.agent import metrics_cli

    metrics_cli.add_commands(agent_app)
    app.add_typer(agent_app, name="agent")

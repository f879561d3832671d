"""``jetfleet agent ...`` commands (the host agent) and ``jetfleet serve-model``."""

from __future__ import annotations

import typer

agent_app = typer.Typer(help="Host agent: register, heartbeat, metrics, OTA models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from agent.modelserver import cli as modelserver_cli

    app.add_typer(agent_app, name="agent")
    modelserver_cli.register(app)

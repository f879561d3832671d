"""``jetfleet gateway ...`` commands."""

from __future__ import annotations

import typer

gateway_app = typer.Typer(help="Traefik gateway across Jetsons.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(gateway_app, name="gateway")

"""``jetfleet backend ...`` (the control plane) and the admin clients ``jetfleet fleet|models ...``."""

from __future__ import annotations

import typer

backend_app = typer.Typer(help="Control plane: device registry, heartbeats, models.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(backend_app, name="backend")

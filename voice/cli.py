"""``jetfleet voice ...`` commands."""

from __future__ import annotations

import typer

voice_app = typer.Typer(help="Voice service: speech-to-text and robot commands.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(voice_app, name="voice")

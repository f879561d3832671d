"""CLI options shared by every command that talks to the control plane."""

from __future__ import annotations

from typing import Annotated

import typer

DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"

BackendUrl = Annotated[str, typer.Option("--backend-url", envvar="JETFLEET_BACKEND_URL",
                                         help="Control plane base URL.")]
Token = Annotated[str, typer.Option("--token", envvar="JETFLEET_TOKEN", show_default=False,
                                    help="Admin token of the control plane.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

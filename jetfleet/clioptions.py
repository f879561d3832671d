"""CLI options shared by every command that talks to the control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_BACKEND_URL = "http://127.0.0.1:8000"

BackendUrl = Annotated[str, typer.Option("--backend-url", envvar="JETFLEET_BACKEND_URL",
                                         help="Control plane base URL.")]
Token = Annotated[str, typer.Option("--token", envvar="JETFLEET_TOKEN", show_default=False,
                                    help="API token (jetfleet tokens create) or the admin token.")]
CaBundle = Annotated[Path | None, typer.Option("--ca-bundle", envvar="JETFLEET_CA_BUNDLE",
                                               help="PEM file of the CA that signed an https control plane's "
                                                    "certificate (default: the system's CAs).")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

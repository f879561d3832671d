"""Entry point of the ``jetfleet`` command: wires each role's commands onto one Typer app.

Role CLI modules keep heavy imports inside their command functions, so ``jetfleet --help`` and the
agent stay light.
"""

from __future__ import annotations

import sys

from jetfleet.cliapp import app
from jetfleet.errors import JetfleetError


def _register_roles() -> None:
    from agent import cli as agent_cli
    from backend import cli as backend_cli
    from gateway import cli as gateway_cli
    from voice import cli as voice_cli

    for module in (agent_cli, backend_cli, voice_cli, gateway_cli):
        module.register(app)


def main() -> None:
    _register_roles()
    try:
        app()
    except JetfleetError as exc:  # a clear one-line message instead of a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc

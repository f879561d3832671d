"""Entry point of the ``jetfleet`` command: wires each role's commands onto one Typer app.

Role CLI modules keep heavy imports inside their command functions, so ``jetfleet --help`` and the
agent stay light.
"""

from __future__ import annotations

import importlib
import sys

from jetfleet.cliapp import app
from jetfleet.errors import JetfleetError

ROLES = ("agent", "modelserver", "backend", "voice", "gateway", "bench")
_ROLE_OF_COMMAND = {"agent": "agent", "serve-model": "modelserver", "backend": "backend", "fleet": "backend",
                    "models": "backend", "jobs": "backend", "drift": "backend", "rollouts": "backend",
                    "tokens": "backend", "audit": "backend", "voice": "voice", "gateway": "gateway", "bench": "bench"}


def _register_roles(argv: list[str]) -> None:
    """Register the role that owns the command being run; all roles for help or a typo.

    The agent runs for months on a small device: it should not carry the other roles' imports.
    """
    role = _ROLE_OF_COMMAND.get(argv[1]) if len(argv) > 1 else None
    for name in (role,) if role else ROLES:
        importlib.import_module(f"jetfleet.{name}.cli").register(app)


def _skip_httpx_cli() -> None:
    # httpx imports its own command-line client (click, rich, pygments: about 4 MB of RSS) whenever those are
    # installed; jetfleet never runs it, and the agent has a memory budget. A None entry makes that import
    # fail, and httpx then falls back to a stub ``httpx.main``.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main() -> None:
    _skip_httpx_cli()
    _register_roles(sys.argv)
    try:
        app()
    except JetfleetError as exc:  # a clear one-line message instead of a traceback
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc

"""The Typer application objects every role's CLI module registers its commands on.

Kept apart from ``jetfleet.cli`` so that role modules can import them without a cycle.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="jetfleet",
    help="Edge stack for NVIDIA Jetson fleets: control plane, host agent, models, voice, gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks; numbers go into docs/benchmarks.md.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

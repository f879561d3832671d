"""``jetfleet agent metrics`` and ``jetfleet agent parse-tegrastats`` (heavy imports inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def add_commands(agent_app: typer.Typer) -> None:
    agent_app.command("metrics")(metrics)
    agent_app.command("parse-tegrastats")(parse_tegrastats)


def metrics(
    as_json: bool = typer.Option(False, "--json", help="Print the snapshot as JSON instead of tables."),
    host_root: Path = typer.Option(Path("/"), "--host-root", help="Where the host's /sys, /proc, /etc are."),
    tegrastats_path: Optional[str] = typer.Option(  # noqa: UP045 - Typer needs Optional on Python 3.10
        None, "--tegrastats-path", help="tegrastats executable (default: 'tegrastats' on PATH, if any)."),
    disks: Optional[list[Path]] = typer.Option(  # noqa: UP045
        None, "--disk", help="Mountpoint to report (repeatable; default: the host root)."),
) -> None:
    """Print one metrics snapshot from every source this host has."""
    import json

    from jetfleet.agent.metrics.report import print_snapshot, snapshot_json, take_snapshot

    snapshot = take_snapshot(host_root=host_root, tegrastats_path=tegrastats_path, disk_paths=disks or [host_root])
    if as_json:
        typer.echo(json.dumps(snapshot_json(snapshot), indent=2))
    else:
        print_snapshot(snapshot)


def parse_tegrastats() -> None:
    """Read tegrastats lines on stdin; print one JSON object per line ({"error": ...} for a bad line)."""
    import io
    import sys

    from jetfleet.agent.metrics.report import parse_stream

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()  # one object per line as it comes, for `tegrastats | jetfleet agent parse-tegrastats`

    # Bytes that are not UTF-8 become U+FFFD: such a line is parsed (or reported) like any other.
    parse_stream(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"), write)

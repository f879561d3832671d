"""``jetfleet rollouts ...``: watch and steer staged rollouts (started by ``models tag --rollout``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token

if TYPE_CHECKING:
    from pathlib import Path

    from jetfleet.backend.admin_client import AdminClient

rollouts_app = typer.Typer(help="Staged rollouts: list, show, pause, resume, abort.", no_args_is_help=True)


def _client(backend_url: str, token: str, ca_bundle: Path | None) -> AdminClient:
    from jetfleet.backend.admin_client import AdminClient

    return AdminClient(backend_url, token, ca_bundle=ca_bundle)


@rollouts_app.command("ls")
def list_rollouts(backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
                  as_json: JsonOutput = False) -> None:
    """Every rollout with its state and progress."""
    with _client(backend_url, token, ca_bundle) as client:
        rollouts = client.rollouts()
    if as_json:
        typer.echo(json.dumps(rollouts, indent=2))
        return
    table = Table(title=f"jetfleet: {len(rollouts)} rollouts")
    for column in ("ID", "MODEL:TAG", "FROM", "TO", "STATE", "WAVES", "DEVICES", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for r in rollouts:
        table.add_row(str(r["id"]), f"{r['model']}:{r['tag']}", str(r["from_version"]), str(r["to_version"]),
                      r["state"], _waves_done(r), _devices_done(r), r["reason"] or "-")
    Console().print(table)


@rollouts_app.command("show")
def show(rollout_id: int = typer.Argument(..., metavar="ID"), backend_url: BackendUrl = DEFAULT_BACKEND_URL,
         token: Token = "", ca_bundle: CaBundle = None, as_json: JsonOutput = False) -> None:
    """One rollout: its waves, every device's state and reason (reason codes, gate values), why it stopped."""
    with _client(backend_url, token, ca_bundle) as client:
        rollout = client.rollout(rollout_id)
    if as_json:
        typer.echo(json.dumps(rollout, indent=2))
        return
    _print(rollout)


def _print(r: dict[str, Any]) -> None:
    typer.echo(f"rollout {r['id']}: {r['model']}:{r['tag']} version {r['from_version']} -> {r['to_version']}: "
               f"{r['state']}" + (f" ({r['reason']})" if r["reason"] else ""))
    if r["selector"]:
        typer.echo(f"  only devices matching '{r['selector']}' (the tag stays at {r['from_version']}; "
                   f"they stay pinned to {r['to_version']})")
    gates = ", ".join(r["gates"]) or "none"
    typer.echo(f"  max failures {r['max_failures']}, soak {r['soak_seconds']:g}s, gates: {gates}, "
               f"device timeout {r['device_timeout_seconds']:g}s")
    for number, wave in enumerate(r["waves"], 1):
        typer.echo(f"  wave {number} ({wave['state']}): {', '.join(wave['devices'])}")
    table = Table()
    for column in ("DEVICE", "WAVE", "STATE", "SERVING", "REASON", "GATE VALUES"):
        table.add_column(column, no_wrap=True)
    for d in r["devices"]:
        values = ", ".join(f"{k}={v:g}" for k, v in sorted(d["gates"].items())) or "-"
        serving = "-" if d["version"] is None else str(d["version"])
        table.add_row(d["device_id"], str(d["wave"] + 1), d["state"], serving, d["reason"] or "-", values)
    Console().print(table)


def _waves_done(r: dict[str, Any]) -> str:
    return f"{sum(w['state'] == 'succeeded' for w in r['waves'])}/{len(r['waves'])}"


def _devices_done(r: dict[str, Any]) -> str:
    return f"{sum(d['state'] == 'committed' for d in r['devices'])}/{len(r['devices'])}"


def _action(name: str, doc: str) -> None:
    def command(rollout_id: int = typer.Argument(..., metavar="ID"), backend_url: BackendUrl = DEFAULT_BACKEND_URL,
                token: Token = "", ca_bundle: CaBundle = None) -> None:
        with _client(backend_url, token, ca_bundle) as client:
            rollout = client.rollout_action(rollout_id, name)
        typer.echo(f"rollout {rollout['id']}: {rollout['state']}" +
                   (f" ({rollout['reason']})" if rollout["reason"] else ""))

    command.__doc__ = doc
    rollouts_app.command(name)(command)


_action("pause", "Start no new wave (devices already updating finish).")
_action("resume", "Continue a paused rollout.")
_action("abort", "Send every device of the rollout back to the version it served before.")


def start_rollout(client: AdminClient, *, name: str, tag: str, version: int, waves: str, max_failures: str,
                  soak: str, gates: list[str], device_timeout: str | None, selector: str | None) -> dict[str, Any]:
    from jetfleet.backend.artifacts import InvalidField
    from jetfleet.backend.rollout_spec import parse_duration, parse_gate, parse_max_failures, parse_waves
    from jetfleet.selectors import parse_selector

    parse_waves(waves, field="--rollout")  # bad input fails here, naming the option, before any request
    parse_max_failures(max_failures, field="--max-failures")
    for gate in gates:
        parse_gate(gate, field="--gate")
    soak_seconds = parse_duration(soak, field="--soak")
    body: dict[str, Any] = {"model": name, "tag": tag, "version": version, "waves": waves,
                            "max_failures": max_failures, "soak_seconds": soak_seconds, "gates": gates,
                            "selector": selector}
    if device_timeout is not None:  # else the control plane's default (30 minutes)
        body["device_timeout_seconds"] = parse_duration(device_timeout, field="--device-timeout")
        if body["device_timeout_seconds"] < 1:
            raise InvalidField("--device-timeout", f"must be at least 1s, got '{device_timeout}'")
    if selector is not None:
        parse_selector(selector)  # a bad one fails here, naming the bad part
    return client.start_rollout(body)

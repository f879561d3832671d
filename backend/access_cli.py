"""``jetfleet tokens ...`` (named API tokens with scopes) and ``jetfleet audit`` (who changed what)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table

from jetfleet.backend.access_schemas import AuditRecord, CreatedToken, TokenRecord
from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token
from jetfleet.errors import ConfigError

tokens_app = typer.Typer(help="Named API tokens with scopes: read, deploy, admin.", no_args_is_help=True)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TOKENS = TypeAdapter(list[TokenRecord])
_EVENTS = TypeAdapter(list[AuditRecord])


def parse_duration(text: str, option: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w`` (or plain seconds) as a timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        raise ConfigError(f"{text!r} is not a duration: use e.g. 90m, 12h, 30d or 2w", key=option)
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])


@tokens_app.command("create")
def create(name: str,
           scope: Annotated[str, typer.Option("--scope", help="read | deploy | admin")],
           expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 90d or 12h "
                                                                          "(default: until revoked).")] = None,
           backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Create token NAME and print its secret (shown this once; the control plane stores only a hash)."""
    from jetfleet.backend.admin_client import AdminClient

    body: dict[str, object] = {"name": name, "scope": scope}
    if expires is not None:
        body["expires_in_seconds"] = int(parse_duration(expires, "--expires").total_seconds())
    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        created = CreatedToken.model_validate_json(client.request("POST", "/api/v1/tokens", json=body).content)
    until = created.record.expires_at.isoformat(timespec="seconds") if created.record.expires_at else "revoked"
    typer.echo(f"created token '{name}' (scope {created.record.scope}, valid until {until}); "
               "store it now, it is not shown again:", err=True)
    typer.echo(created.token)


@tokens_app.command("ls")
def ls(backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", as_json: JsonOutput = False,
       ca_bundle: CaBundle = None) -> None:
    """List the tokens (never their secrets)."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        records = _TOKENS.validate_json(client.request("GET", "/api/v1/tokens").content)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    table = Table(title=f"jetfleet: {len(records)} tokens")
    for column in ("NAME", "SCOPE", "STATE", "CREATED", "BY", "EXPIRES", "LAST USED"):
        table.add_column(column, no_wrap=True)
    for r in records:
        table.add_row(r.name, r.scope, r.state, _when(r.created_at), r.created_by, _when(r.expires_at),
                      _when(r.last_used_at))
    Console().print(table)


@tokens_app.command("revoke")
def revoke(name: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
           ca_bundle: CaBundle = None) -> None:
    """Revoke token NAME: it gets 401 from now on."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        client.request("DELETE", f"/api/v1/tokens/{name}")
    typer.echo(f"{name}: revoked")


def audit(since: Annotated[str | None, typer.Option("--since", help="Only changes in the last DURATION "
                                                                    "(e.g. 24h) or since an ISO time.")] = None,
          backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", as_json: JsonOutput = False,
          ca_bundle: CaBundle = None) -> None:
    """Who changed what, when, from where (every change made with an API token)."""
    from jetfleet.backend.admin_client import AdminClient

    params = {"since": _since(since).isoformat()} if since else None
    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        events = _EVENTS.validate_json(client.request("GET", "/api/v1/audit", params=params).content)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    table = Table(title=f"jetfleet audit: {len(events)} changes")
    for column in ("WHEN", "WHO", "FROM", "OPERATION", "TARGET", "STATUS"):
        table.add_column(column, no_wrap=column != "TARGET")
    for e in events:
        table.add_row(_when(e.at), e.actor, e.address or "-", e.operation, e.target, str(e.status))
    Console().print(table)


def _since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(timezone.utc) - parse_duration(text, "--since")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")

"""``jetfleet fleet ...``: the fleet as the control plane sees it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import typer
from rich.console import Console
from rich.table import Table

from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token
from jetfleet.jobs import OutboxStatus
from jetfleet.protocol import DeviceRecord, Metrics

fleet_app = typer.Typer(help="Fleet status and device administration.", no_args_is_help=True)
GIB = 1024**3
BACKLOG_WARN_SECONDS = 600.0


@fleet_app.command("status")
def status(backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
           ca_bundle: CaBundle = None, as_json: JsonOutput = False,
           only: str | None = typer.Option(None, "--status", help="Only 'online' or 'offline' devices.")) -> None:
    """List every device with its status, metrics and when it was last seen."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        records = client.devices(status=only)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return
    Console().print(fleet_table(records, now=datetime.now(timezone.utc)))


@fleet_app.command("show")
def show(device_id: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
         ca_bundle: CaBundle = None) -> None:
    """Everything the control plane knows about one device, as JSON."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        typer.echo(client.device(device_id).model_dump_json(indent=2))


@fleet_app.command("label")
def label(device_id: str, labels: list[str] = typer.Argument(None, metavar="KEY=VALUE...",
                                                              help="Labels to set (or change)."),
          remove: list[str] = typer.Option([], "--remove", metavar="KEY", help="Remove a label (repeatable)."),
          backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Set or remove a device's labels (used by --selector)."""
    from jetfleet.backend.admin_client import AdminClient
    from jetfleet.errors import ConfigError
    from jetfleet.selectors import parse_labels

    wanted = parse_labels(labels or [], key="KEY=VALUE")
    if not wanted and not remove:
        raise ConfigError("give labels to set (key=value) or --remove KEY", key="KEY=VALUE")
    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        record = client.set_labels(device_id, wanted, remove)
    typer.echo(f"{device_id}: {_labels(record.labels)}")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


@fleet_app.command("reprovision")
def reprovision(device_id: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
                ca_bundle: CaBundle = None) -> None:
    """Release a device id: the next device registering with it gets a new token."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        client.reprovision(device_id)
    typer.echo(f"{device_id}: released; the next registration with this id claims it")


@fleet_app.command("remove")
def remove(device_id: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
           ca_bundle: CaBundle = None) -> None:
    """Forget a device (decommission)."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        client.remove(device_id)
    typer.echo(f"{device_id}: removed")


def fleet_table(records: list[DeviceRecord], *, now: datetime) -> Table:
    table = Table(title=f"jetfleet: {len(records)} devices")
    for column in ("DEVICE", "NAME", "STATUS", "CPU", "GPU", "TEMP", "MEMORY", "DISK", "OUTBOX", "LAST SEEN", "LABELS"):
        table.add_column(column, no_wrap=True)
    for r in records:
        m = r.metrics or Metrics()
        table.add_row(r.device_id, r.device_name,
                      "[green]online[/]" if r.status == "online" else "[red]offline[/]",
                      _percent(m.cpu_utilization_ratio), _percent(m.gpu_utilization_ratio),
                      f"{max(m.temperatures_celsius.values()):.0f}°C" if m.temperatures_celsius else "-",
                      _used_of(m.memory_used_bytes, m.memory_total_bytes),
                      _used_of(m.disk_used_bytes, m.disk_total_bytes), _outbox(r.outbox),
                      _age(r.last_heartbeat, now), _labels(r.labels))
    return table


def _outbox(outbox: OutboxStatus | None) -> str:
    """Pending results; highlighted when the oldest waits longer than BACKLOG_WARN_SECONDS (a growing backlog:
    the device cannot deliver), with the results dropped by the outbox's size limit."""
    if outbox is None:
        return "-"
    text = str(outbox.pending)
    age = outbox.oldest_age_seconds
    if outbox.pending and age is not None and age > BACKLOG_WARN_SECONDS:
        text = f"[yellow]{outbox.pending} backlog, oldest {_duration(int(age))}[/]"
    if outbox.dropped_total:
        text += f" [red]{outbox.dropped_total} dropped[/]"
    return text


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def _used_of(used: int | None, total: int | None) -> str:
    if used is None or not total:
        return "-"
    return f"{used / GIB:.1f}/{total / GIB:.1f} GiB"


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return _duration(max(0, int((now - when).total_seconds()))) + " ago"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"

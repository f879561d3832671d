"""``jetfleet jobs ...``: headless jobs on devices (create, list, run now, delete, results)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token
from jetfleet.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from jetfleet.backend.admin_client import AdminClient
    from jetfleet.backend.job_schemas import JobRecord

jobs_app = typer.Typer(help="Headless jobs: run a model over a folder of inputs on devices, on a schedule or "
                            "on demand; collect the results.", no_args_is_help=True)
_FLAG_OF_FIELD = {"name": "NAME", "model": "--model", "tag": "--model", "input_dir": "--input-dir",
                  "every_seconds": "--every", "cron": "--cron", "devices": "--device",
                  "selector": "--selector"}
RESULT_FIELDS = ("device_id", "job", "run_id", "input", "input_sha256", "model", "version", "outputs", "error",
                 "created_at", "received_at", "key")


def _client(backend_url: str, token: str, ca_bundle: Path | None) -> AdminClient:
    from jetfleet.backend.admin_client import AdminClient

    return AdminClient(backend_url, token, ca_bundle=ca_bundle)


@jobs_app.command("create")
def create(
    name: str = typer.Argument(..., help="Job name (lowercase letters, digits, _ . -)."),
    model: str = typer.Option(..., "--model", metavar="MODEL:TAG", help="The model, by tag (follows tag moves)."),
    input_dir: str = typer.Option(..., "--input-dir", help="Folder of input files on the device "
                                                           "(.npy, .npz, .json, .csv)."),
    every: str | None = typer.Option(None, "--every", metavar="DURATION", help="Run every DURATION (30s, 15m, 1h)."),
    cron: str | None = typer.Option(None, "--cron", metavar="EXPR", help="Run on a cron schedule (device time)."),
    on_demand: bool = typer.Option(False, "--on-demand", help="Run only on `jetfleet jobs run`."),
    device: list[str] = typer.Option([], "--device", help="Device id (repeatable)."),
    all_devices: bool = typer.Option(False, "--all", help="Every registered device (and any registered later)."),
    selector: str | None = typer.Option(None, "--selector", metavar="SELECTOR",
                                        help="Devices whose labels match, now and later (e.g. 'role=vision')."),
    backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
    as_json: JsonOutput = False,
) -> None:
    """Create a job; its devices pick it up with their next heartbeat."""
    from pydantic import ValidationError

    from jetfleet.backend.durations import parse_duration
    from jetfleet.backend.job_schemas import CreateJob
    from jetfleet.backend.models_cli import one_target, split_ref

    model_name, tag = split_ref(model, "--model")
    if sum((every is not None, cron is not None, on_demand)) != 1:
        raise ConfigError("give exactly one of --every DURATION, --cron \"EXPR\" or --on-demand", key="--every")
    one_target(device, all_devices, selector)
    schedule = "every" if every is not None else "cron" if cron is not None else "on_demand"
    try:
        body = CreateJob.model_validate({
            "name": name, "model": model_name, "tag": tag, "input_dir": input_dir, "schedule": schedule,
            "every_seconds": parse_duration(every, key="--every") if every is not None else None, "cron": cron,
            "devices": device, "all": all_devices, "selector": selector})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "name"
        raise ConfigError(f"{field}: {first['msg']}", key=_FLAG_OF_FIELD.get(field, field)) from exc
    with _client(backend_url, token, ca_bundle) as client:
        record = client.create_job(body)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
        return
    typer.echo(f"job {record.name}: {record.model}:{record.tag} over {record.input_dir} {_when(record)} on "
               f"{len(record.devices)} device(s): {', '.join(record.devices) or '-'}")


def _when(record: JobRecord) -> str:
    if record.schedule == "every":
        return f"every {record.every_seconds:g}s"
    if record.schedule == "cron":
        return f"cron '{record.cron}'"
    return "on demand"


@jobs_app.command("ls")
def list_jobs(backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
              as_json: JsonOutput = False) -> None:
    """Every job with its model, schedule, devices and stored results."""
    with _client(backend_url, token, ca_bundle) as client:
        jobs = client.jobs()
    if as_json:
        typer.echo(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
        return
    table = Table(title=f"jetfleet: {len(jobs)} jobs")
    for column in ("JOB", "MODEL", "VERSION", "SCHEDULE", "INPUT DIR", "DEVICES", "RESULTS"):
        table.add_column(column, no_wrap=True)
    for j in jobs:
        devices = "all" if j.target == "all" else str(len(j.devices))
        devices += f" ({j.selector})" if j.selector else ""
        table.add_row(j.name, f"{j.model}:{j.tag}", "-" if j.version is None else str(j.version), _when(j),
                      j.input_dir, devices, str(j.results))
    Console().print(table)


@jobs_app.command("show")
def show(name: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
         ca_bundle: CaBundle = None) -> None:
    """One job, as JSON."""
    with _client(backend_url, token, ca_bundle) as client:
        typer.echo(client.job(name).model_dump_json(indent=2))


@jobs_app.command("run")
def run(name: str, device: list[str] = typer.Option([], "--device", help="Only these devices (repeatable)."),
        backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Run the job once more now (on its devices' next heartbeat)."""
    with _client(backend_url, token, ca_bundle) as client:
        result = client.run_job(name, device)
    typer.echo(f"job {name}: run requested on {len(result.devices)} device(s): {', '.join(result.devices) or '-'}")


@jobs_app.command("delete")
def delete(name: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "",
           ca_bundle: CaBundle = None) -> None:
    """Remove the job from its devices (stored results stay until the retention removes them)."""
    with _client(backend_url, token, ca_bundle) as client:
        client.delete_job(name)
    typer.echo(f"job {name} deleted")


@jobs_app.command("results")
def results(name: str, device: str | None = typer.Option(None, "--device", help="Only this device's results."),
            backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
            as_json: JsonOutput = False) -> None:
    """The job's stored results, oldest first (--json: one JSON object per line)."""
    with _client(backend_url, token, ca_bundle) as client:
        rows = list(client.job_results(name, device))
    if as_json:
        for row in rows:
            typer.echo(json.dumps({key: row.model_dump(mode="json")[key] for key in RESULT_FIELDS}))
        return
    table = Table(title=f"{name}: {len(rows)} result(s)")
    for column in ("DEVICE", "RUN", "INPUT", "MODEL", "VERSION", "OUTCOME", "CREATED"):
        table.add_column(column, no_wrap=True)
    for r in rows:
        outcome = f"error: {r.error}" if r.error else ", ".join(sorted(r.outputs or {})) or "-"
        table.add_row(r.device_id, r.run_id[:8], r.input, r.model, "-" if r.version is None else str(r.version),
                      outcome, r.created_at.isoformat(timespec="seconds"))
    Console().print(table)

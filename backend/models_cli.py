"""``jetfleet models ...``: push, tag, deploy and watch models through the control plane's admin API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token
from jetfleet.errors import ConfigError, TemporaryError

if TYPE_CHECKING:
    from jetfleet.backend.admin_client import AdminClient
    from jetfleet.backend.model_schemas import ModelStatusReport, UploadResult, VersionRecord

models_app = typer.Typer(help="Model registry and OTA: push, tag, deploy, status.", no_args_is_help=True)
STATUS_FIELDS = ("device_id", "version", "state", "reason", "endpoint")


def _client(backend_url: str, token: str, ca_bundle: Path | None = None) -> AdminClient:
    from jetfleet.backend.admin_client import AdminClient

    return AdminClient(backend_url, token, ca_bundle=ca_bundle)


def split_ref(ref: str, argument: str = "NAME:TAG") -> tuple[str, str]:
    name, sep, tag = ref.rpartition(":")
    if not sep or not name or not tag:
        raise ConfigError(f"expected NAME:TAG, got {ref!r}", key=argument)
    return name, tag


@models_app.command("push")
def push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="The model artifact."),
    name: str = typer.Option(..., "--name", help="Model name."),
    tag: str | None = typer.Option(None, "--tag", help="Point this tag at the new version."),
    framework: str | None = typer.Option(None, "--framework",
                                         help="onnx|tensorrt|pytorch|tensorflow|sklearn (default: from the name)."),
    golden_input: Path | None = typer.Option(None, "--golden-input", exists=True, dir_okay=False,
                                             help="Health-gate input (.npy, or .npz by input name)."),
    golden_output: Path | None = typer.Option(None, "--golden-output", exists=True, dir_okay=False,
                                              help="Expected output for --golden-input (.npy or .npz)."),
    reference: Path | None = typer.Option(None, "--reference", exists=True, dir_okay=False,
                                          help="Drift reference: .npz with one array per input name (rows = "
                                               "samples); default: the first rows the fleet reports."),
    golden_rtol: float = typer.Option(1e-3, help="Relative tolerance of the golden check."),
    golden_atol: float = typer.Option(1e-5, help="Absolute tolerance of the golden check."),
    backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
    as_json: JsonOutput = False,
) -> None:
    """Upload FILE as the next version of NAME (streamed, with a progress bar)."""
    from jetfleet.backend.model_schemas import CreateVersion

    with _client(backend_url, token, ca_bundle) as client:
        artifact = _upload(client, file, quiet=as_json)
        golden = {kind: _upload(client, path, quiet=True) if path else None
                  for kind, path in (("input", golden_input), ("output", golden_output), ("reference", reference))}
        request = CreateVersion(
            artifact_upload=artifact.upload_id, filename=file.name, framework=framework,  # type: ignore[arg-type]
            tag=tag, golden_input_upload=golden["input"].upload_id if golden["input"] else None,
            golden_output_upload=golden["output"].upload_id if golden["output"] else None,
            golden_input_filename=golden_input.name if golden_input else None,
            golden_output_filename=golden_output.name if golden_output else None,
            golden_rtol=golden_rtol, golden_atol=golden_atol,
            reference_upload=golden["reference"].upload_id if golden["reference"] else None,
            reference_filename=reference.name if reference else None)
        record = client.create_version(name, request)
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
        return
    _print_pushed(record)


def _upload(client: AdminClient, path: Path, *, quiet: bool) -> UploadResult:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    size = path.stat().st_size
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  disable=quiet, transient=False) as progress:
        hashing = progress.add_task(f"hash   {path.name}", total=size)
        sending = progress.add_task(f"upload {path.name}", total=size)
        return client.upload(path, on_hashed=lambda n: progress.advance(hashing, n),
                             on_sent=lambda n: progress.advance(sending, n))


def _print_pushed(record: VersionRecord) -> None:
    tags = f" tagged {', '.join(record.tags)}" if record.tags else ""
    typer.echo(f"{record.name} version {record.version}{tags}: {record.framework}, {record.size_bytes} bytes, "
               f"sha256 {record.sha256}")
    if record.inputs is not None:
        typer.echo("  inputs:  " + ", ".join(f"{s.name} {s.datatype}{list(s.shape)}" for s in record.inputs))
        typer.echo("  outputs: " + ", ".join(f"{s.name} {s.datatype}{list(s.shape)}" for s in record.outputs or ()))
    if record.golden is not None:
        typer.echo(f"  golden check: rtol {record.golden.rtol:g}, atol {record.golden.atol:g}")


@models_app.command("tag")
def tag_version(ref: str = typer.Argument(..., metavar="NAME:TAG"), version: int = typer.Argument(..., min=1),
                rollout: str | None = typer.Option(None, "--rollout", metavar="WAVES",
                                                   help="Stage it: cumulative wave sizes, e.g. '1,10%,50%,100%'."),
                max_failures: str = typer.Option("0", "--max-failures", metavar="N|P%",
                                                 help="Failed devices tolerated before the rollout halts."),
                soak: str = typer.Option("0s", "--soak", metavar="DURATION",
                                         help="Gates must hold this long after a wave committed (30s, 5m)."),
                gate: list[str] = typer.Option([], "--gate", metavar="EXPR",
                                               help="e.g. 'error_ratio<0.01', 'p99_ms<50' (repeatable)."),
                device_timeout: str | None = typer.Option(None, "--device-timeout", metavar="DURATION",
                                                          help="A device not committed this long after its wave "
                                                               "started counts as failed (offline, stuck, locked); "
                                                               "default 30m."),
                selector: str | None = typer.Option(None, "--selector", metavar="SELECTOR",
                                                    help="With --rollout: only the followers whose labels match "
                                                         "(they stay pinned to VERSION; the tag does not move)."),
                backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Point NAME:TAG at VERSION; every device following the tag swaps to it (with --rollout: wave by wave)."""
    name, tag = split_ref(ref)
    staging = gate or max_failures != "0" or soak != "0s" or device_timeout is not None or selector is not None
    if rollout is None and staging:
        raise ConfigError("--max-failures, --soak, --gate, --device-timeout and --selector need --rollout WAVES "
                          "(a plain tag move swaps every follower)", key="--rollout")
    with _client(backend_url, token, ca_bundle) as client:
        if rollout is not None:
            from jetfleet.backend.rollouts_cli import start_rollout

            started = start_rollout(client, name=name, tag=tag, version=version, waves=rollout,
                                    max_failures=max_failures, soak=soak, gates=gate, device_timeout=device_timeout,
                                    selector=selector)
            waves = " | ".join(str(len(w["devices"])) for w in started["waves"]) or "no devices"
            typer.echo(f"rollout {started['id']}: {name}:{tag} version {started['from_version']} -> {version}, "
                       f"waves of {waves}; watch it: jetfleet rollouts show {started['id']}")
            return
        record = client.move_tag(name, tag, version)
    moved = f"from version {record.previous_version} " if record.previous_version else ""
    typer.echo(f"{name}:{tag} moved {moved}to version {record.version}; {len(record.devices)} device(s) follow it")


SELECTOR = typer.Option(None, "--selector", metavar="SELECTOR",
                        help="Devices whose labels match, e.g. 'role=vision,site in (lab-a, lab-b)'.")


def one_target(device: list[str], all_devices: bool, selector: str | None) -> None:
    """Exactly one of --device, --all and --selector; a bad selector fails naming its bad part."""
    if [bool(device), all_devices, selector is not None].count(True) != 1:
        raise ConfigError("give one of: --device ID (repeatable), --all, --selector SELECTOR", key="--device")
    if selector is not None:
        from jetfleet.selectors import parse_selector

        parse_selector(selector)  # a bad one fails here, naming the bad part


@models_app.command("deploy")
def deploy(ref: str = typer.Argument(..., metavar="NAME:TAG"),
           device: list[str] = typer.Option([], "--device", help="Device id (repeatable)."),
           all_devices: bool = typer.Option(False, "--all", help="Every registered device."),
           selector: str | None = SELECTOR,
           backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Make devices follow NAME:TAG (again: also retries a version that failed on them)."""
    name, tag = split_ref(ref)
    one_target(device, all_devices, selector)
    with _client(backend_url, token, ca_bundle) as client:
        result = client.deploy(name, tag, device, all_devices, selector)
    typer.echo(f"{name}:{tag} (version {result.version}) deployed to {len(result.devices)} device(s): "
               f"{', '.join(result.devices) or '-'}")


@models_app.command("undeploy")
def undeploy(name: str, device: list[str] = typer.Option([], "--device", help="Device id (repeatable)."),
             all_devices: bool = typer.Option(False, "--all", help="Every device running it."),
             selector: str | None = SELECTOR,
             backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Stop serving NAME on devices (they keep the files)."""
    one_target(device, all_devices, selector)
    with _client(backend_url, token, ca_bundle) as client:
        devices = client.undeploy(name, device, all_devices, selector)
    typer.echo(f"{name} undeployed from {len(devices)} device(s): {', '.join(devices) or '-'}")


@models_app.command("ls")
def list_models(backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
                as_json: JsonOutput = False) -> None:
    """Every model with its versions, tags and how many devices follow it."""
    with _client(backend_url, token, ca_bundle) as client:
        models = client.models()
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in models], indent=2))
        return
    table = Table(title=f"jetfleet: {len(models)} models")
    for column in ("MODEL", "VERSIONS", "LATEST", "TAGS", "DEVICES"):
        table.add_column(column, no_wrap=True)
    for m in models:
        tags = ", ".join(f"{t}->{v}" for t, v in sorted(m.tags.items())) or "-"
        table.add_row(m.name, str(m.versions), str(m.latest), tags, str(m.devices))
    Console().print(table)


@models_app.command("status")
def status(name: str, backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
           as_json: JsonOutput = False) -> None:
    """Per device: the version actually serving, the deployment state and reason, the endpoint."""
    with _client(backend_url, token, ca_bundle) as client:
        report = client.model_status(name)
    if as_json:
        typer.echo(json.dumps(status_json(report), indent=2))
        return
    Console().print(status_table(report))


def status_json(report: ModelStatusReport) -> dict[str, object]:
    return {"model": report.model,
            "devices": [{key: getattr(d, key) for key in STATUS_FIELDS} for d in report.devices]}


def status_table(report: ModelStatusReport) -> Table:
    table = Table(title=f"{report.model} on {len(report.devices)} device(s)")
    for column in ("DEVICE", "TAG", "WANTED", "SERVING", "LAST GOOD", "STATE", "REASON", "ENDPOINT"):
        table.add_column(column, no_wrap=True)
    for d in report.devices:
        table.add_row(d.device_id, d.tag or "-", _v(d.target_version), _v(d.version), _v(d.last_known_good),
                      d.state or "-", d.reason or "-", d.endpoint or "-")
    return table


def _v(version: int | None) -> str:
    return "-" if version is None else str(version)


@models_app.command("wait")
def wait(name: str, version: int = typer.Option(..., "--version", min=1, help="The version to wait for."),
         timeout: float = typer.Option(120.0, min=1, max=3600, help="Give up after this many seconds."),
         backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None) -> None:
    """Wait until every device following NAME serves VERSION (exit 1 on timeout, with the last status)."""
    deadline = time.monotonic() + timeout
    with _client(backend_url, token, ca_bundle) as client:
        while True:
            try:
                report = client.model_status(name)
            except TemporaryError:
                report = None
            if report and report.devices and all(d.version == version for d in report.devices):
                typer.echo(f"{name}: version {version} serving on {len(report.devices)} device(s)")
                return
            if time.monotonic() > deadline:
                if report:
                    Console(stderr=True).print(status_table(report))
                typer.echo(f"error: timed out after {timeout:g}s waiting for {name} version {version}", err=True)
                raise typer.Exit(1)
            time.sleep(0.5)


@models_app.command("infer")
def infer(name: str, url: str = typer.Option(..., "--url", help="The device's endpoint (from 'models status')."),
          data: str = typer.Option(..., "--data", help="The input tensor as a JSON (nested) list of numbers."),
          datatype: str = typer.Option("FP32", "--datatype", help="KServe v2 datatype of the input."),
          timeout: float = typer.Option(30.0, min=0.1, help="Seconds.")) -> None:
    """One KServe v2 inference through a device's endpoint: prints the serving version and the outputs."""
    import httpx

    from jetfleet.httperrors import raise_for_status, translate_transport_errors

    try:
        values = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg}", key="--data") from exc
    flat, shape = _flatten(values)
    base = url.rstrip("/")
    with translate_transport_errors(base), httpx.Client(base_url=base, timeout=timeout) as http:
        metadata = http.get(f"/v2/models/{name}")
        raise_for_status(metadata, base)
        input_name = metadata.json()["inputs"][0]["name"]
        body = {"inputs": [{"name": input_name, "datatype": datatype, "shape": shape, "data": flat}]}
        response = http.post(f"/v2/models/{name}/infer", json=body)
        raise_for_status(response, base)
    answer = response.json()
    typer.echo(f"{answer['model_name']} version {answer['model_version']}:")
    for output in answer["outputs"]:
        typer.echo(f"  {output['name']} {output['shape']}: {output['data']}")


def _flatten(values: object) -> tuple[list[object], list[int]]:
    if not isinstance(values, list):
        return [values], []
    parts = [_flatten(v) for v in values]
    inner = parts[0][1] if parts else []
    if any(p[1] != inner for p in parts):
        raise ConfigError("the nested lists are ragged (all rows must have the same length)", key="--data")
    return [x for p in parts for x in p[0]], [len(values), *inner]

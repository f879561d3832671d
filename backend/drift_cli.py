"""``jetfleet drift ...``: input drift of model versions against their references."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from jetfleet.clioptions import DEFAULT_BACKEND_URL, BackendUrl, CaBundle, JsonOutput, Token

drift_app = typer.Typer(help="Input drift of model versions (PSI, Jensen-Shannon, KS, Wasserstein).",
                        no_args_is_help=True)


@drift_app.command("status")
def status(model: str, version: int | None = typer.Option(None, "--version", min=1,
                                                          help="Default: the newest version with reported inputs."),
           device: str | None = typer.Option(None, "--device", help="Only this device's inputs."),
           backend_url: BackendUrl = DEFAULT_BACKEND_URL, token: Token = "", ca_bundle: CaBundle = None,
           as_json: JsonOutput = False) -> None:
    """Per input feature: each statistic, its threshold, the sample counts and whether it drifts."""
    from jetfleet.backend.admin_client import AdminClient

    with AdminClient(backend_url, token, ca_bundle=ca_bundle) as client:
        params: dict[str, str | int] = {"version": version} if version else {}
        if device:
            params["device_id"] = device
        response = client.request("GET", f"/api/v1/drift/{model}", params=params)
    if as_json:
        typer.echo(response.text)
        return
    from jetfleet.backend.drift_schemas import DriftReport

    report = DriftReport.model_validate_json(response.content)
    scope = f"device {report.device_id}" if report.device_id else f"{len(report.devices)} device(s)"
    verdict = "DRIFT" if report.drift else "no drift"
    if report.reference == "collecting":
        verdict = f"collecting the reference ({report.reference_rows} rows so far)"
    table = Table(title=f"{report.model} version {report.version} on {scope}: {verdict}")
    for column in ("INPUT", "INDEX", "DRIFT", "WINDOWS", "KS (thr)", "PSI (thr)", "JS (thr)", "WASSERSTEIN (thr)",
                   "N REF", "N CUR"):
        table.add_column(column, no_wrap=True)
    for f in report.features:
        table.add_row(f.input, str(f.index), "yes" if f.drift else "no", f"{f.windows_drifting}/{f.windows}",
                      _pair(f.ks, f.ks_threshold), _pair(f.psi, f.psi_threshold), _pair(f.js, f.js_threshold),
                      _pair(f.wasserstein, f.wasserstein_threshold), str(f.n_reference), str(f.n_current))
    Console().print(table)


def _pair(value: float | None, threshold: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ({threshold:.3f})" if threshold is not None else f"{value:.3f}"

"""``jetfleet bench ota`` (the OTA commands for operators are ``jetfleet models ...``, in backend.models_cli)."""

from __future__ import annotations

import typer

from jetfleet.cliapp import bench_app


def bench_ota(
    swaps: int = typer.Option(3, "--swaps", min=1, max=20, help="Tag moves under load."),
    threads: int = typer.Option(4, "--threads", min=1, max=32, help="Clients sending requests back to back."),
    big_mb: int = typer.Option(200, "--big-mb", min=0, max=4096,
                               help="Size of the artifact for the download test (0: skip it)."),
    curl_runs: int = typer.Option(3, "--curl-runs", min=1, max=10, help="curl downloads to compare with."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Swap under load (failed requests, tag move -> serving, p99) and download throughput vs curl, resume."""
    from agent.ota.bench import run_ota_bench
    from jetfleet.benchout import print_result

    result = run_ota_bench(swaps=swaps, threads=threads, big_mb=big_mb, curl_runs=curl_runs)
    print_result("jetfleet bench ota", result, as_json=as_json)


def register(app: typer.Typer) -> None:
    bench_app.command("ota")(bench_ota)

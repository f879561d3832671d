"""``jetfleet bench ...``: every benchmark command. Numbers go into docs/benchmarks.md."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from jetfleet.cliapp import bench_app
from jetfleet.clioptions import JsonOutput
from jetfleet.errors import ConfigError


@bench_app.command("agent")
def bench_agent(
    interval: float = typer.Option(1.0, min=0.1, max=3600, help="Heartbeat interval of the measured agent (s)."),
    duration: float = typer.Option(60.0, min=5, max=3600, help="Seconds to measure (bounded)."),
    host_root: Path = typer.Option(Path("/"), help="Host root for the metrics (e.g. a Jetson fixture tree)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Agent footprint: RSS and CPU over a run, and the heartbeat request size."""
    from jetfleet.bench.agent import footprint_dict, measure
    from jetfleet.bench.output import print_result

    result = measure(interval=interval, duration=duration, host_root=host_root)
    print_result("jetfleet bench agent", footprint_dict(result), as_json=as_json)


@bench_app.command("backend")
def bench_backend(
    devices: int = typer.Option(1000, "--devices", min=1, help="Simulated devices."),
    duration: float = typer.Option(10.0, min=1, max=600, help="Seconds of load (bounded)."),
    concurrency: int = typer.Option(32, min=1, max=512, help="Requests in flight."),
    database_url: str | None = typer.Option(None, help="Default: a fresh SQLite file; or postgresql+psycopg://..."),
    backend_url: str | None = typer.Option(None, help="Load an already running control plane instead."),
    restart: bool = typer.Option(False, "--restart",
                                 help="Restart the control plane after registering (measures the cold start)."),
    replicas: int = typer.Option(1, "--replicas", min=1, max=8,
                                 help="Control-plane replicas on the one PostgreSQL database (--database-url); the "
                                      "devices are split between them, device i on replica i mod N."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Heartbeats/s and latency of the control plane under simulated devices."""
    from jetfleet.bench.backend import result_dict, run_bench
    from jetfleet.bench.output import print_result

    result = run_bench(devices=devices, duration=duration, concurrency=concurrency, database_url=database_url,
                       backend_url=backend_url, restart=restart, replicas=replicas)
    print_result("jetfleet bench backend", result_dict(result), as_json=as_json)


@bench_app.command("rollout")
def bench_rollout(
    devices: int = typer.Option(200, "--devices", min=2, max=100_000, help="Simulated devices."),
    waves: str = typer.Option("1,10%,50%,100%", "--waves", help="The rollout's waves (as for --rollout)."),
    concurrency: int = typer.Option(32, min=1, max=512, help="Heartbeats in flight."),
    idle_seconds: float = typer.Option(10.0, min=1, max=600, help="Seconds measured before the rollout."),
    rollout_interval: float = typer.Option(1.0, min=0.05, max=60, help="The control plane's rollout loop period."),
    timeout: float = typer.Option(120.0, min=5, max=3600, help="Give up on the rollout after this many seconds."),
    as_json: JsonOutput = False,
) -> None:
    """A staged rollout over simulated devices: CPU per heartbeat with and without it, time between waves."""
    from jetfleet.bench.output import print_result
    from jetfleet.bench.rollout import run_rollout_bench

    result = run_rollout_bench(devices=devices, waves=waves, concurrency=concurrency, idle_seconds=idle_seconds,
                               rollout_interval=rollout_interval, timeout=timeout)
    print_result("jetfleet bench rollout", result, as_json=as_json)


@bench_app.command("voice")
def bench_voice(
    rounds: int = typer.Option(20, min=3, max=500, help="Clips per latency measurement"),
    concurrency: str = typer.Option("1,2,4", help="Concurrency levels for throughput"),
    language: str = typer.Option("nl", help="Language of the benchmark clip ('loop vooruit' in Dutch)"),
    cpu_threads: int = typer.Option(0, help="CPU threads for both sides (0: one per core)"),
    cache_dir: Path | None = typer.Option(None, help="[default: $XDG_CACHE_HOME/jetfleet/voice]"),
    raw_json: bool = typer.Option(False, "--json", help="Print JSON instead of Markdown"),
) -> None:
    """Voice server vs raw faster-whisper on a 2 s clip, text-command latency, throughput, RSS."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from jetfleet.bench.voice import print_result, run_benchmark
    from jetfleet.voice.cli import default_cache_dir
    from jetfleet.voice.settings import whisper_language

    levels = [int(level) for level in concurrency.split(",") if level.strip()]
    result = run_benchmark(rounds=rounds, levels=levels, cache_dir=cache_dir or default_cache_dir(),
                           language=whisper_language(language), threads=cpu_threads or (os.cpu_count() or 1))
    print_result(result, raw_json)


@bench_app.command("gateway")
def bench_gateway(
    sections: str = typer.Option(",".join(("overhead", "audio", "failover")),
                                 help="Comma-separated: overhead, audio, failover."),
    duration: float = typer.Option(5.0, min=1, max=120, help="Seconds per throughput run (overhead)."),
    audio_seconds: float = typer.Option(20.0, min=2, max=600, help="Seconds of load per audio run."),
    kill_runs: int = typer.Option(3, min=1, max=20, help="Runs of the kill test per retry setting."),
    work_dir: Path | None = typer.Option(None, help="Logs and configs (default: a temporary dir)."),
    as_json: JsonOutput = False,
) -> None:
    """Traefik's cost (direct vs gateway), audio throughput with 1-3 voice nodes, losses when a node dies."""
    from jetfleet.bench.gateway import SECTIONS, run_bench
    from jetfleet.bench.output import print_result

    chosen = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}", key="--sections")
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-gateway-") as tmp:
        result = run_bench(chosen, work_dir or Path(tmp), duration=duration, audio_seconds=audio_seconds,
                           kill_runs=kill_runs)
    print_result("jetfleet bench gateway", result, as_json=as_json)


@bench_app.command("ota")
def bench_ota(
    swaps: int = typer.Option(3, "--swaps", min=1, max=20, help="Tag moves under load."),
    threads: int = typer.Option(4, "--threads", min=1, max=32, help="Clients sending requests back to back."),
    big_mb: int = typer.Option(200, "--big-mb", min=0, max=4096,
                               help="Size of the artifact for the download test (0: skip it)."),
    curl_runs: int = typer.Option(3, "--curl-runs", min=1, max=10, help="curl downloads to compare with."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Swap under load (failed requests, tag move -> serving, p99) and download throughput vs curl, resume."""
    from jetfleet.bench.ota import run_ota_bench
    from jetfleet.bench.output import print_result

    result = run_ota_bench(swaps=swaps, threads=threads, big_mb=big_mb, curl_runs=curl_runs)
    print_result("jetfleet bench ota", result, as_json=as_json)


@bench_app.command("model-server")
def bench_model_server(
    requests: int = typer.Option(500, "--requests", min=10, max=100_000, help="Timed requests per mode"),
    batch: int = typer.Option(1, "--batch", min=1, max=1024, help="Rows per request"),
    features: int = typer.Option(64, "--features", min=1, max=65536, help="Input width of the test model"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table"),
) -> None:
    """KServe v2 round trip (tritonclient binary, plain JSON) vs in-process ONNX Runtime on one small model."""
    from jetfleet.bench.modelserver import run_benchmark

    run_benchmark(requests=requests, batch=batch, features=features, as_json=as_json)


@bench_app.command("jobs")
def bench_jobs(
    inputs: int = typer.Option(300, "--inputs", min=10, max=100_000, help="Input files (one request each)."),
    batch: int = typer.Option(1, "--batch", min=1, max=1024, help="Rows per input file."),
    features: int = typer.Option(16, "--features", min=1, max=1024, help="Input width of the test model."),
    windows: str = typer.Option("100,1000,10000,100000", help="Rows per window for the sketch-size comparison."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Headless job overhead per input vs calling the model endpoint directly; sketch bytes vs raw input bytes."""
    from jetfleet.bench.jobs import run
    from jetfleet.bench.output import print_result

    try:
        rows = [int(part) for part in windows.split(",") if part.strip()]
    except ValueError as exc:
        raise ConfigError("comma-separated whole numbers expected", key="--windows") from exc
    print_result("jetfleet bench jobs", run(inputs=inputs, batch=batch, features=features, window_rows=rows),
                 as_json=as_json)
@bench_app.command("faults")
def bench_faults(
    out: Path | None = typer.Option(None, "--out", help="Also write the table into this markdown file "
                                                        "(e.g. docs/reliability.md), between its markers."),
    timeout: float = typer.Option(1800.0, min=60, max=7200, help="Bound on the whole run (s)."),
) -> None:
    """Drive every fault that has a test against real processes and print the fault matrix (source checkout)."""
    from jetfleet.bench.faults import run, table, write_table

    outcomes = run(timeout)
    text = table(outcomes)
    typer.echo(text)
    if out is not None:
        write_table(out, text)
    if any(o.result in ("failed", "not run") for o in outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """The commands are declared on ``bench_app`` (already part of ``app``) when this module is imported."""


@bench_app.command("results")
def bench_results(
    database_url: str | None = typer.Option(None, help="Default: a fresh SQLite file; or postgresql+psycopg://..."),
    devices: int = typer.Option(20, min=1, max=10_000, help="Simulated devices posting batches."),
    batch_size: int = typer.Option(100, min=1, max=500, help="Results per batch."),
    concurrency: int = typer.Option(8, min=1, max=256, help="Batches in flight."),
    duration: float = typer.Option(10.0, min=1, max=120, help="Seconds of load (bounded)."),
    as_json: JsonOutput = False,
) -> None:
    """Job results ingested per second by a real control plane (gzip batches, as the agent's outbox sends)."""
    from jetfleet.bench.ingest import as_dict, run_ingest
    from jetfleet.bench.output import print_result

    result = run_ingest(database_url=database_url, devices=devices, batch_size=batch_size, concurrency=concurrency,
                        duration=duration)
    print_result("jetfleet bench results", as_dict(result), as_json=as_json)


@bench_app.command("drift")
def bench_drift(
    devices: int = typer.Option(1000, min=1, max=100_000, help="Devices with one window each."),
    features: int = typer.Option(100, min=1, max=10_000, help="Input features (one sketch each per window)."),
    rows: int = typer.Option(100, min=1, max=100_000, help="Input rows per window."),
    database_url: str | None = typer.Option(None, help="Default: a fresh SQLite file; or postgresql+psycopg://..."),
    as_json: JsonOutput = False,
) -> None:
    """Time of one fleet-wide drift evaluation (load, merge, statistics) and sketch vs raw bytes per window."""
    from jetfleet.bench.ingest import as_dict, run_drift
    from jetfleet.bench.output import print_result

    result = run_drift(devices=devices, features=features, rows=rows, database_url=database_url)
    print_result("jetfleet bench drift", as_dict(result), as_json=as_json)

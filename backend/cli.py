"""``jetfleet backend ...`` (the control plane) and the admin clients ``jetfleet fleet ...``."""

from __future__ import annotations

import logging

import typer

from backend.settings import DEFAULT_DATABASE_URL
from jetfleet.cliapp import bench_app

backend_app = typer.Typer(help="Control plane: device registry, heartbeats, models.", no_args_is_help=True)


@backend_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port to listen on."),
    database_url: str = typer.Option(DEFAULT_DATABASE_URL, envvar="JETFLEET_DATABASE_URL",
                                     help="sqlite:///PATH (embedded default) or postgresql+psycopg://..."),
    admin_token: str = typer.Option("", envvar="JETFLEET_ADMIN_TOKEN", show_default=False,
                                    help="Token for the admin API and CLI (required)."),
    provisioning_key: str | None = typer.Option(None, envvar="JETFLEET_PROVISIONING_KEY",
                                                help="When set, new devices must present it to register."),
    heartbeat_interval: float | None = typer.Option(None, help="Override every device's heartbeat interval (s)."),
    log_level: str = typer.Option("info", help="debug, info, warning, error."),
    access_log: bool = typer.Option(False, help="Log every request (noisy at fleet scale)."),
) -> None:
    """Run the control plane (migrates the database first)."""
    import uvicorn

    from backend.app import create_app
    from backend.db import create_db_engine, migrate
    from backend.settings import BackendSettings

    settings = BackendSettings(database_url=database_url, admin_token=admin_token,
                               provisioning_key=provisioning_key, heartbeat_interval=heartbeat_interval)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    app = create_app(settings, engine)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=access_log,
                timeout_graceful_shutdown=5)


@bench_app.command("backend")
def bench_backend(
    devices: int = typer.Option(1000, "--devices", min=1, help="Simulated devices."),
    duration: float = typer.Option(10.0, min=1, max=600, help="Seconds of load (bounded)."),
    concurrency: int = typer.Option(32, min=1, max=512, help="Requests in flight."),
    database_url: str | None = typer.Option(None, help="Default: a fresh SQLite file; or postgresql+psycopg://..."),
    backend_url: str | None = typer.Option(None, help="Load an already running control plane instead."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Heartbeats/s and latency of the control plane under simulated devices."""
    from backend.bench import result_dict, run_bench
    from jetfleet.benchout import print_result

    result = run_bench(devices=devices, duration=duration, concurrency=concurrency, database_url=database_url,
                       backend_url=backend_url)
    print_result("jetfleet bench backend", result_dict(result), as_json=as_json)


def register(app: typer.Typer) -> None:
    from backend import fleet_cli

    app.add_typer(backend_app, name="backend")
    app.add_typer(fleet_cli.fleet_app, name="fleet")

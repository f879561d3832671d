"""``jetfleet backend ...`` (the control plane) and the admin clients ``jetfleet fleet ...``."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from jetfleet.backend.settings import DEFAULT_DATA_DIR, DEFAULT_DATABASE_URL, DEFAULT_SIGNING_KEY_NAME

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from jetfleet.backend.settings import BackendSettings
    from jetfleet.backend.signing import Signer

log = logging.getLogger("jetfleet.backend")
SigningKeyPath = typer.Option(None, "--signing-key", envvar="JETFLEET_SIGNING_KEY",
                              help="Ed25519 manifest signing key (PEM); default "
                                   f"<data-dir>/{DEFAULT_SIGNING_KEY_NAME}.")

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
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, envvar="JETFLEET_DATA_DIR",
                                  help="Model artifacts, uploads in progress, the default signing key."),
    signing_key: Path | None = SigningKeyPath,
    previous_signing_key: Path | None = typer.Option(
        None, "--previous-signing-key", help="While rotating keys: the old key, still used for devices that do "
        "not trust the new one yet (docs/ota.md)."),
    manifest_ttl: float = typer.Option(86400.0, help="Seconds a signed manifest stays valid (re-signed at half)."),
    results_retention: str = typer.Option("30d", help="Keep raw job results (and drift sketches) this long."),
    drift_interval: str = typer.Option("60s", help="How often drift is evaluated (metrics, state, webhook)."),
    drift_window: str = typer.Option("1h", help="Width of a drift window (sketches bucketed by window end)."),
    drift_windows: int = typer.Option(6, help="Recent windows a drift verdict looks at."),
    drift_min_windows: int = typer.Option(3, help="A feature drifts when flagged in at least this many of them."),
    drift_alpha: float = typer.Option(0.01, help="False-alarm rate per window over all features (Bonferroni)."),
    drift_reference_rows: int = typer.Option(1000, help="Without a pushed reference: the first N input rows "
                                                        "reported for a version become its reference."),
    drift_webhook: str | None = typer.Option(None, "--drift-webhook", envvar="JETFLEET_DRIFT_WEBHOOK",
                                             help="Retrain hook: POST a drift report here on each state change."),
    webhook_secret: str | None = typer.Option(None, "--webhook-secret", envvar="JETFLEET_WEBHOOK_SECRET",
                                              help="Sign webhook bodies (HMAC-SHA256, X-Jetfleet-Signature)."),
    rollout_interval: float = typer.Option(1.0, help="Seconds between two passes of the rollout loop."),
    replica_name: str | None = typer.Option(None, "--replica-name", envvar="JETFLEET_REPLICA_NAME",
                                            help="This replica's name in logs, /api/v1/status and the leader gauge "
                                                 "(default HOST:PORT). On PostgreSQL any number of replicas may "
                                                 "share the database (docs/ha.md)."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", envvar="JETFLEET_TLS_CERT",
                                         help="Serve HTTPS with this certificate (PEM, chain included)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", envvar="JETFLEET_TLS_KEY",
                                        help="The certificate's private key (PEM)."),
) -> None:
    """Run the control plane (migrates the database first; creates the signing key when absent)."""
    import uvicorn

    from jetfleet.backend.app import create_app
    from jetfleet.backend.db import create_db_engine, migrate
    from jetfleet.backend.durations import parse_duration
    from jetfleet.backend.settings import BackendSettings

    settings = BackendSettings(database_url=database_url, admin_token=admin_token,
                               provisioning_key=provisioning_key, heartbeat_interval=heartbeat_interval,
                               data_dir=data_dir, signing_key=signing_key, previous_signing_key=previous_signing_key,
                               manifest_ttl=manifest_ttl,
                               results_retention=parse_duration(results_retention, key="--results-retention"),
                               drift_interval=parse_duration(drift_interval, key="--drift-interval"),
                               drift_window=parse_duration(drift_window, key="--drift-window"),
                               drift_windows=drift_windows, drift_min_windows=drift_min_windows,
                               drift_alpha=drift_alpha, drift_reference_rows=drift_reference_rows,
                               drift_webhook=drift_webhook, webhook_secret=webhook_secret,
                               rollout_interval=rollout_interval,
                               replica_name=replica_name or f"{socket.gethostname()}:{port}")
    tls = _tls_files(tls_cert, tls_key)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    signer = _shared_signer(settings, engine) if settings.shared_database else _signer(settings)
    app = create_app(settings, engine, signer=signer)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower(), access_log=access_log,
                timeout_graceful_shutdown=5, ssl_certfile=tls[0], ssl_keyfile=tls[1])


def _tls_files(cert: Path | None, key: Path | None) -> tuple[str | None, str | None]:
    """uvicorn's TLS arguments; both files or neither, and they must load as a certificate and its key."""
    import ssl

    from jetfleet.errors import ConfigError

    if cert is None and key is None:
        return None, None
    if cert is None or key is None:
        raise ConfigError("give both --tls-cert and --tls-key (or neither, for plain HTTP)",
                          key="--tls-cert" if cert is None else "--tls-key")
    for path, option in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise ConfigError(f"{path}: no such file", key=option)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(f"{cert} and {key} do not load as a PEM certificate and its private key ({exc})",
                          key="--tls-cert") from exc
    return str(cert), str(key)


def _shared_signer(settings: BackendSettings, engine: Engine) -> Signer:
    """The signer of a replica sharing its database: the same data dir and key as the other replicas, or a refusal."""
    from jetfleet.backend.replica_checks import claim_data_dir, claim_signing_key, refuse_missing_key

    claim_data_dir(engine, settings.data_dir)
    refuse_missing_key(engine, settings.signing_key_path)
    signer = _signer(settings)
    claim_signing_key(engine, signer)
    log.info("replica %s: the replicas sharing this database sign with key %s", settings.replica_name,
             signer.current.key_id)
    return signer


def _signer(settings: BackendSettings) -> Signer:
    from jetfleet.backend.signing import Signer, load_key, load_or_create_key

    current, created = load_or_create_key(settings.signing_key_path)
    if created:
        log.warning("created manifest signing key %s (key id %s); back it up: devices pin its public key %s",
                    settings.signing_key_path, current.key_id, current.public_b64)
    else:
        log.info("manifest signing key %s (key id %s)", settings.signing_key_path, current.key_id)
    previous = None
    if settings.previous_signing_key is not None:
        previous = load_key(settings.previous_signing_key, option="--previous-signing-key")
        log.info("key rotation: devices still trusting key %s get manifests signed by it announcing %s",
                 previous.key_id, current.key_id)
    return Signer(current, previous)


@backend_app.command("public-key")
def public_key(
    signing_key: Path | None = SigningKeyPath,
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, envvar="JETFLEET_DATA_DIR", help="As for 'backend serve'."),
    show_id: bool = typer.Option(False, "--id", help="Print the key id too (id<TAB>key)."),
) -> None:
    """Print the base64 public key that devices pin (agent config key manifest_public_key)."""
    from jetfleet.backend.signing import load_key

    key = load_key(signing_key or data_dir / DEFAULT_SIGNING_KEY_NAME)
    typer.echo(f"{key.key_id}\t{key.public_b64}" if show_id else key.public_b64)


@backend_app.command("keygen")
def keygen(path: Path = typer.Argument(..., help="Where to write the new key (refuses to overwrite).")) -> None:
    """Create a new Ed25519 signing key (mode 0600), e.g. for a key rotation; prints its public key."""
    from jetfleet.backend.signing import create_key

    key = create_key(path, option="PATH")
    typer.echo(f"created {path} (key id {key.key_id})")
    typer.echo(key.public_b64)


def register(app: typer.Typer) -> None:
    from jetfleet.backend import access_cli, drift_cli, fleet_cli, jobs_cli, models_cli, rollouts_cli

    app.add_typer(backend_app, name="backend")
    app.add_typer(access_cli.tokens_app, name="tokens")
    app.command("audit")(access_cli.audit)
    app.add_typer(fleet_cli.fleet_app, name="fleet")
    app.add_typer(models_cli.models_app, name="models")
    app.add_typer(jobs_cli.jobs_app, name="jobs")
    app.add_typer(drift_cli.drift_app, name="drift")
    app.add_typer(rollouts_cli.rollouts_app, name="rollouts")

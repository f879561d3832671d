"""The control plane's settings: built once from flags/environment by the CLI, then passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jetfleet.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///jetfleet-backend.db"
DEFAULT_DATA_DIR = Path("jetfleet-data")
DEFAULT_SIGNING_KEY_NAME = "manifest-signing.key"
MIN_MANIFEST_TTL = 60.0


@dataclass(frozen=True)
class BackendSettings:
    database_url: str
    admin_token: str
    provisioning_key: str | None = None
    heartbeat_interval: float | None = None  # None: each device keeps the interval it asked for
    offline_after_missed: int = 3
    data_dir: Path = Path("jetfleet-data")  # model artifacts, uploads in progress, the default signing key
    signing_key: Path | None = None  # None: <data_dir>/manifest-signing.key
    previous_signing_key: Path | None = None  # set only while rotating keys (docs/ota.md)
    manifest_ttl: float = 86400.0  # seconds a signed manifest stays valid; re-signed at half-life
    max_upload_bytes: int = 64 * 1024**3
    # Headless jobs and drift (docs/jobs-and-drift.md).
    results_retention: float = 30 * 86400.0  # seconds raw results (and drift sketches) are kept
    drift_interval: float = 60.0  # seconds between drift evaluations (metrics, state, webhook)
    drift_window: float = 3600.0  # seconds per drift window (sketches bucketed by their window end)
    drift_windows: int = 6  # recent windows looked at
    drift_min_windows: int = 3  # a feature drifts when flagged in at least this many of them
    drift_alpha: float = 0.01  # family-wise false-alarm rate per window (Bonferroni over the features)
    drift_reference_rows: int = 1000  # without a pushed reference: the first N input rows become it
    drift_min_window_rows: int = 20  # windows with fewer rows are not tested
    drift_webhook: str | None = None  # retrain hook: POST a drift report on each state change
    webhook_secret: str | None = None  # HMAC-SHA256 key of the X-Jetfleet-Signature header
    rollout_interval: float = 1.0  # seconds between two passes of the rollout loop
    # Replicas (docs/ha.md): on PostgreSQL any number of replicas may share the database.
    replica_name: str = "control-plane"  # this replica in logs, /api/v1/status and the leader gauge
    leader_check_interval: float = 1.0  # seconds between two tries (standby) or checks (leader) of the lease

    @property
    def shared_database(self) -> bool:
        """PostgreSQL: replicas may share it (cache invalidation by NOTIFY, a leader lease). SQLite: one process."""
        return self.database_url.startswith("postgresql")

    @property
    def signing_key_path(self) -> Path:
        return self.signing_key or self.data_dir / DEFAULT_SIGNING_KEY_NAME

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def __post_init__(self) -> None:
        if not self.admin_token:
            raise ConfigError("an admin token is required (--admin-token or JETFLEET_ADMIN_TOKEN)",
                              key="admin_token")
        if len(self.admin_token) < 8:
            raise ConfigError("the admin token must be at least 8 characters", key="admin_token")
        if not self.database_url.startswith(("sqlite:", "postgresql")):
            raise ConfigError(f"unsupported database URL {self.database_url!r}: use sqlite:///PATH or "
                              "postgresql+psycopg://USER:PASS@HOST:PORT/DB", key="database_url")
        if self.heartbeat_interval is not None and not 0 < self.heartbeat_interval <= 3600:
            raise ConfigError("must be between 0 and 3600 seconds", key="heartbeat_interval")
        if self.offline_after_missed < 1:
            raise ConfigError("must be at least 1", key="offline_after_missed")
        if not 0 < self.rollout_interval <= 60:
            raise ConfigError("must be above 0 and at most 60 seconds", key="rollout_interval")
        if not 0 < self.leader_check_interval <= 30:
            raise ConfigError("must be above 0 and at most 30 seconds", key="leader_check_interval")
        if not self.replica_name or len(self.replica_name) > 64:
            raise ConfigError("must be 1 to 64 characters", key="replica_name")
        if self.manifest_ttl < MIN_MANIFEST_TTL:
            raise ConfigError(f"must be at least {MIN_MANIFEST_TTL:g} seconds", key="manifest_ttl")
        self._check_drift()

    def _check_drift(self) -> None:
        for key in ("results_retention", "drift_interval", "drift_window"):
            if not getattr(self, key) > 0:
                raise ConfigError("must be longer than zero", key=key)
        if not 1 <= self.drift_min_windows <= self.drift_windows:
            raise ConfigError(f"must be between 1 and drift_windows ({self.drift_windows})", key="drift_min_windows")
        if not 0 < self.drift_alpha < 1:
            raise ConfigError("must be between 0 and 1", key="drift_alpha")
        for key in ("drift_reference_rows", "drift_min_window_rows"):
            if getattr(self, key) < 1:
                raise ConfigError("must be at least 1", key=key)
        if self.drift_webhook is not None and not self.drift_webhook.startswith(("http://", "https://")):
            raise ConfigError(f"{self.drift_webhook!r} is not an http(s) URL", key="drift_webhook")

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
    rollout_interval: float = 1.0  # seconds between two passes of the rollout loop

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
        if self.manifest_ttl < MIN_MANIFEST_TTL:
            raise ConfigError(f"must be at least {MIN_MANIFEST_TTL:g} seconds", key="manifest_ttl")

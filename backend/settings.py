"""The control plane's settings: built once from flags/environment by the CLI, then passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jetfleet.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///jetfleet-backend.db"


@dataclass(frozen=True)
class BackendSettings:
    database_url: str
    admin_token: str
    provisioning_key: str | None = None
    heartbeat_interval: float | None = None  # None: each device keeps the interval it asked for
    offline_after_missed: int = 3
    data_dir: Path = Path("jetfleet-data")

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

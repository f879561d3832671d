"""The agent's configuration: one JSON file, overridden by ``JETFLEET_<KEY>`` variables, validated once.

Every key is documented in ``config/config.json.template``. A bad file fails at start with one message
naming the key and the file; nothing half-starts.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jetfleet.errors import ConfigError
from jetfleet.files import read_config_text
from jetfleet.protocol import DEVICE_ID_PATTERN, ServiceEndpoint, valid_labels

DEFAULT_CONFIG_PATH = Path("/etc/jetson-client/config.json")
ENV_PREFIX = "JETFLEET_"
COMMENT_PREFIX = "//"  # keys like "// backend_url" document the file and are ignored
JSON_KEYS = ("services", "model_port_range", "labels")  # environment values given as JSON

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Port = Annotated[int, Field(ge=0, le=65535)]


class AgentConfig(BaseModel):
    """The validated agent configuration, passed down to every component (never re-read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The seed's keys, with the seed's defaults.
    backend_url: str
    api_key: str | None = None
    ca_bundle: Path | None = None  # PEM of a private CA that signed an https backend_url's certificate
    heartbeat_interval: Annotated[float, Field(gt=0, le=3600)] = 30.0
    device_name: Annotated[str, Field(min_length=1, max_length=128)] = Field(default_factory=socket.gethostname)
    device_type: Annotated[str, Field(min_length=1, max_length=64)] = "jetson_orin"
    location: Annotated[str, Field(max_length=128)] = "Unknown"
    models_dir: Path = Path("/opt/ml-platform/models")
    auto_update: bool = True
    log_level: LogLevel = "INFO"
    # jetfleet's keys.
    state_dir: Path = Path("/var/lib/jetson-client")
    device_id: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)] | None = None
    metrics_port: Port = 9101
    metrics_host: str = "0.0.0.0"
    log_file: Path | None = Path("/var/log/jetson-client.log")
    host_root: Path = Path("/")
    tegrastats_path: str | None = None
    request_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    services: tuple[ServiceEndpoint, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)  # key=value for --selector (docs/rollouts.md)
    # OTA models (docs/ota.md).
    manifest_public_key: str | None = None
    executor: Literal["auto", "docker", "process"] = "auto"
    model_image: Annotated[str, Field(min_length=1)] = "jetfleet/model-server:latest"
    docker_host: Annotated[str, Field(min_length=1)] = "unix:///var/run/docker.sock"
    model_bind_host: str = "127.0.0.1"
    model_port_range: tuple[Port, Port] = (18100, 18299)
    model_router: Literal["traefik", "none"] = "traefik"
    model_router_host: str = "0.0.0.0"
    model_router_port: Port = 8100
    model_router_api_port: Port = 8101
    model_router_binary: Path | None = None
    model_endpoint_url: str | None = None
    ota_interval: Annotated[float, Field(gt=0, le=3600)] = 2.0
    ota_keep_versions: Annotated[int, Field(ge=1, le=100)] = 3
    ota_disk_headroom_bytes: Annotated[int, Field(ge=0)] = 512 * 1024 * 1024
    ota_engine_size_factor: Annotated[float, Field(ge=0, le=100)] = 1.0
    ota_download_timeout: Annotated[float, Field(gt=0)] = 3600.0
    ota_ready_timeout: Annotated[float, Field(gt=0)] = 120.0
    ota_convert_timeout: Annotated[float, Field(gt=0)] = 1800.0
    ota_health_timeout: Annotated[float, Field(gt=0)] = 60.0
    ota_switch_timeout: Annotated[float, Field(gt=0)] = 30.0
    ota_drain_seconds: Annotated[float, Field(ge=0, le=600)] = 2.0
    # Headless jobs and the results outbox (docs/jobs-and-drift.md).
    jobs_interval: Annotated[float, Field(gt=0, le=3600)] = 1.0
    jobs_processed_retention_seconds: Annotated[float, Field(ge=0)] = 30 * 86400.0  # marks of files gone
    outbox_max_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    outbox_full_policy: Literal["drop_oldest", "pause"] = "drop_oldest"
    outbox_batch_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    outbox_retry_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    ota_metrics_window_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # Update locks (docs/rollouts.md): while a process holds flock on this file, swaps wait.
    update_lock_path: Path | None = None  # None: <state_dir>/update.lock
    update_lock_max_seconds: Annotated[float, Field(gt=0)] = 600.0

    @property
    def update_lock_file(self) -> Path:
        return self.update_lock_path or self.state_dir / "update.lock"

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return valid_labels(value)

    @field_validator("model_port_range")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 1024 or value[0] > value[1]:
            raise ValueError(f"must be [FIRST, LAST] with 1024 <= FIRST <= LAST (got {list(value)})")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _readable_pem(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such file (the PEM file of the control plane's CA)")
        return value

    @field_validator("model_endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
        return value.rstrip("/")

    @field_validator("backend_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
            raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def load_config(path: Path, environ: Mapping[str, str]) -> AgentConfig:
    """Read ``path``, apply ``JETFLEET_<KEY>`` overrides from ``environ``, validate; raise ``ConfigError``."""
    raw = {k: v for k, v in _read_json_object(path).items() if not k.startswith(COMMENT_PREFIX)}
    _reject_unknown_keys(raw.keys(), source=str(path))
    file_config = _validate(raw, source=str(path), strict=True)
    overrides = _env_overrides(environ)
    if not overrides:
        return file_config
    return _validate({**raw, **overrides}, source=str(path), strict=False, env_keys=set(overrides))


def config_keys() -> list[str]:
    return list(AgentConfig.model_fields)


def _read_json_object(path: Path) -> dict[str, Any]:
    text = read_config_text(path, "config file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          source=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a JSON object", source=str(path))
    return data


def _reject_unknown_keys(keys: Any, source: str) -> None:
    known = set(config_keys())
    for key in keys:
        if key not in known:
            raise ConfigError(f"unknown key; valid keys are: {', '.join(sorted(known))}", key=key, source=source)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for key, field in AgentConfig.model_fields.items():
        value = environ.get(ENV_PREFIX + key.upper())
        if value is None:
            continue
        if value.strip().lower() == "null" and not field.is_required():
            overrides[key] = None
        elif key in JSON_KEYS:
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not valid JSON: {exc.msg}", key=key, source=ENV_PREFIX + key.upper()) from exc
        else:
            overrides[key] = value
    return overrides


def _validate(data: Mapping[str, Any], *, source: str, strict: bool,
              env_keys: set[str] | None = None) -> AgentConfig:
    try:
        if strict:  # JSON types must be right in the file: "30" is not a number there
            return AgentConfig.model_validate_json(json.dumps(dict(data)), strict=True)
        return AgentConfig.model_validate(dict(data))  # environment values are strings by nature
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "backend_url"
        top = str(error["loc"][0]) if error["loc"] else key
        where = f"variable {ENV_PREFIX}{top.upper()}" if env_keys and top in env_keys else source
        message = "required key is missing" if error["type"] == "missing" else error["msg"]
        message = message.removeprefix("Value error, ")
        raise ConfigError(message, key=key, source=where) from exc

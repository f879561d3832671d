"""The fleet file: which Jetsons the gateway balances across, and how. Validated once, then passed down.

A fleet file is YAML::

    gateway:                      # every key optional; defaults below
      port: 8889                  # where clients connect (Traefik's ``web`` entrypoint)
      host: 0.0.0.0
      api_port: 8080              # Traefik API + dashboard (``traefik`` entrypoint)
      api_host: 127.0.0.1
      metrics_port: 8082          # Prometheus /metrics (``metrics`` entrypoint)
      metrics_host: 0.0.0.0
      health_port: 8890           # the gateway's own /health service (loopback; Traefik routes /health to it)
      strategy: leasttime         # wrr | p2c | leasttime | hrw
      sticky: false               # session cookie (with wrr, p2c, leasttime; Traefik ignores it with hrw)
      health_interval: 1s         # active probe of every node's health path (at most 5s)
      unhealthy_interval: null    # probe interval of a node that is down (default: half of health_interval)
      health_timeout: 500ms
      failure_window: 2s          # passive check: max_failed_attempts failed requests in this window eject a node
      max_failed_attempts: 1
      retry_attempts: 3           # requests that could not reach a node are retried on another one
      retry_in_flight: []         # route groups (voice, audio, vision, models) whose requests are also retried
                                  # when the node failed *after* receiving them: at-least-once, so a voice
                                  # command may run twice
      dial_timeout: 2s
      response_timeout: 30s       # longest wait for a node's response headers (longest inference)
      access_log: true
      poll_interval: 1s           # how often Traefik polls the control plane (--from-backend)
      log_level: INFO
    nodes:
      - name: jetson-a                      # unique
        url: http://192.168.1.21:8000       # scheme://host[:port], no path
        roles: [voice, yolov8n]             # voice, vision, or model names (routed as /v2/models/NAME/...)
        weight: 1                           # share of the traffic relative to the other nodes
        backup: false                       # true: for each of its roles that has a primary node, used only
                                            # while every primary is down (a role with only backups uses them)
        urls: {yolov8n: "http://192.168.1.21:9000"}   # optional: a role served at another address
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from jetfleet.durations import parse_duration
from jetfleet.errors import ConfigError
from jetfleet.files import read_config_text
from jetfleet.modelfiles.layout import NAME_PATTERN as MODEL_NAME_PATTERN
from jetfleet.protocol import DEVICE_ID_PATTERN
from jetfleet.traefik.config import check_url

Strategy = Literal["wrr", "p2c", "leasttime", "hrw"]
RouteGroup = Literal["voice", "audio", "vision", "models"]
Seconds = Annotated[float, BeforeValidator(parse_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
SERVICE_ROLES = ("voice", "vision")  # every other role is a model name

# Settings that shape the dynamic config (the rest are static: listen addresses, logging, polling).
DYNAMIC_SETTINGS = ("strategy", "sticky", "health_interval", "unhealthy_interval", "health_timeout", "failure_window",
                    "max_failed_attempts", "retry_attempts", "retry_in_flight", "dial_timeout", "response_timeout")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySettings(_Strict):
    """The ``gateway:`` section (see the module docstring for every key)."""

    port: Port = 8889
    host: str = "0.0.0.0"
    api_port: Port = 8080
    api_host: str = "127.0.0.1"
    metrics_port: Port = 8082
    metrics_host: str = "0.0.0.0"
    health_port: Port = 8890
    strategy: Strategy = "leasttime"
    sticky: bool = False
    health_interval: Annotated[Seconds, Field(ge=0.1, le=5.0)] = 1.0
    unhealthy_interval: Annotated[Seconds, Field(ge=0.05, le=5.0)] | None = None
    health_timeout: Annotated[Seconds, Field(ge=0.05, le=5.0)] = 0.5
    failure_window: Annotated[Seconds, Field(ge=0.1, le=60.0)] = 2.0
    max_failed_attempts: Annotated[int, Field(ge=1, le=100)] = 1
    retry_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry_in_flight: tuple[RouteGroup, ...] = ()
    dial_timeout: Annotated[Seconds, Field(ge=0.05, le=60.0)] = 2.0
    response_timeout: Annotated[Seconds, Field(ge=0.1, le=3600.0)] = 30.0
    access_log: bool = True
    poll_interval: Annotated[Seconds, Field(ge=0.1, le=60.0)] = 1.0
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if self.sticky and self.strategy == "hrw":
            raise ValueError("sticky: Traefik silently ignores a sticky cookie with strategy hrw; "
                             "use wrr, p2c or leasttime for sticky sessions")
        if self.health_timeout > self.health_interval:
            raise ValueError("health_timeout must not be longer than health_interval")
        ports = [self.port, self.api_port, self.metrics_port, self.health_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"port, api_port, metrics_port and health_port must differ (got {ports})")
        return self

    @property
    def effective_unhealthy_interval(self) -> float:
        # A down node is probed more often than a healthy one: recovery is noticed in half the time.
        return self.unhealthy_interval if self.unhealthy_interval is not None else self.health_interval / 2


class Node(_Strict):
    """One Jetson (or other node) and what it serves."""

    name: Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
    url: str
    roles: Annotated[tuple[Annotated[str, Field(pattern=MODEL_NAME_PATTERN)], ...], Field(min_length=1)]
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    backup: bool = False
    urls: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("urls")
    @classmethod
    def _role_urls(cls, value: dict[str, str]) -> dict[str, str]:
        return {role: check_url(url) for role, url in value.items()}

    @model_validator(mode="after")
    def _roles(self) -> Node:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles of node '{self.name}' repeat a role: {list(self.roles)}")
        extra = sorted(set(self.urls) - set(self.roles))
        if extra:
            raise ValueError(f"urls of node '{self.name}' name roles it does not have: {extra}")
        return self

    def url_for(self, role: str) -> str:
        return self.urls.get(role, self.url)


class Fleet(_Strict):
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    nodes: tuple[Node, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Fleet:
        names = [node.name for node in self.nodes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate node names: {duplicates}")
        for role in self.roles():
            _check_role(role, [node for node in self.nodes if role in node.roles])
        return self

    def roles(self) -> list[str]:
        return sorted({role for node in self.nodes for role in node.roles})


def _check_role(role: str, nodes: list[Node]) -> None:
    urls = [node.url_for(role) for node in nodes]
    repeated = sorted({url for url in urls if urls.count(url) > 1})
    if repeated:
        raise ValueError(f"role '{role}' lists the same URL on several nodes: {repeated}")


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file; ``ConfigError`` names the key and the file."""
    fleet = parse_fleet(_read_yaml(path), source=str(path))
    if not fleet.nodes:
        raise ConfigError("the fleet has no nodes: list at least one node with a role", key="nodes",
                          source=str(path))
    return fleet


def load_settings(path: Path) -> GatewaySettings:
    """A file with only the ``gateway:`` section (for ``--from-backend``, where the registry lists the nodes)."""
    fleet = parse_fleet(_read_yaml(path), source=str(path))
    if fleet.nodes:
        raise ConfigError("a settings file for --from-backend must not list nodes (the registry does)",
                          key="nodes", source=str(path))
    return fleet.gateway


def parse_fleet(data: object, *, source: str) -> Fleet:
    if not isinstance(data, Mapping):
        raise ConfigError("the top level must be a mapping with 'gateway' and 'nodes'", source=source)
    try:
        return Fleet.model_validate(dict(data))
    except ValidationError as exc:
        raise _config_error(exc, source) from exc


def parse_dynamic_settings(values: Mapping[str, str], *, source: str) -> GatewaySettings:
    """Dynamic settings given as strings (query parameters); lists are comma-separated."""
    unknown = sorted(set(values) - set(DYNAMIC_SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting; valid ones are: {', '.join(DYNAMIC_SETTINGS)}", key=unknown[0],
                          source=source)
    data: dict[str, Any] = dict(values)
    if "retry_in_flight" in data:
        data["retry_in_flight"] = [group for group in data["retry_in_flight"].split(",") if group]
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, source, prefix="") from exc


def dynamic_settings_query(settings: GatewaySettings) -> dict[str, str]:
    """The inverse of ``parse_dynamic_settings`` for the settings that differ from the defaults."""
    defaults = GatewaySettings()
    query: dict[str, str] = {}
    for name in DYNAMIC_SETTINGS:
        value = getattr(settings, name)
        if value == getattr(defaults, name):
            continue
        query[name] = _query_value(value)
    return query


def _query_value(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_yaml(path: Path) -> object:
    text = read_config_text(path, "fleet file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", source=str(path)) from exc


def _config_error(exc: ValidationError, source: str, prefix: str = "") -> ConfigError:
    error = exc.errors()[0]
    key = prefix + _format_loc(error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(error["loc"][:-1])
        valid = ", ".join(parent.model_fields) if parent else ""
        return ConfigError(f"unknown key; valid keys are: {valid}", key=key or None, source=source)
    message = "required key is missing" if error["type"] == "missing" else error["msg"]
    return ConfigError(message.removeprefix("Value error, "), key=key or None, source=source)


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return Fleet
    models: dict[str, type[BaseModel]] = {"gateway": GatewaySettings, "nodes": Node}
    return models.get(names[0]) if len(names) == 1 else None

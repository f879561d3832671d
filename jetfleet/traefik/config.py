"""The part of Traefik 3.7's dynamic configuration that jetfleet renders, as strict typed models.

Traefik rejects a *whole* file over one unknown key (at startup nothing is routed then), and applies a
valid but empty config from the HTTP provider by removing every route. So every config jetfleet hands
to Traefik passes ``validate_dynamic`` first: unknown keys, bad durations, dangling references, and
combinations that Traefik accepts but disables or silently ignores are refused here, with the key path.
Key names and semantics were checked against Traefik 3.7.15 (docs/gateway.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jetfleet.errors import ConfigError
from jetfleet.files import write_atomic

GoDuration = Annotated[str, Field(pattern=r"^((\d+(\.\d+)?(ns|us|ms|s|m|h))+|\d+)$")]


def check_url(value: str) -> str:
    """``scheme://host[:port]`` with no path, query or credentials; raise ``ValueError`` otherwise."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {value!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or " " in value:
        raise ValueError(f"must be scheme://host[:port] without path, query or credentials, got {value!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


class TraefikModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class EmptyHealthCheck(TraefikModel):
    """``healthCheck: {}`` on a failover: track the children's health and report it upwards."""


class ServerHealthCheck(TraefikModel):
    scheme: Literal["http", "https"] | None = None
    path: str
    method: Literal["GET", "HEAD"] | None = None
    status: int | None = None
    interval: GoDuration
    unhealthy_interval: GoDuration | None = None
    timeout: GoDuration
    follow_redirects: bool | None = None
    headers: dict[str, str] | None = None


class PassiveHealthCheck(TraefikModel):
    failure_window: GoDuration
    max_failed_attempts: Annotated[int, Field(ge=1)]


class Cookie(TraefikModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    secure: bool | None = None
    http_only: bool | None = None
    same_site: Literal["none", "lax", "strict"] | None = None
    max_age: int | None = None
    path: str | None = None


class Sticky(TraefikModel):
    cookie: Cookie


class Server(TraefikModel):
    url: str
    weight: Annotated[int, Field(ge=0)] | None = None


class LoadBalancer(TraefikModel):
    strategy: Literal["wrr", "p2c", "leasttime", "hrw"] | None = None
    servers: list[Server] = Field(default_factory=list)
    sticky: Sticky | None = None
    health_check: ServerHealthCheck | None = None
    passive_health_check: PassiveHealthCheck | None = None
    pass_host_header: bool | None = None
    servers_transport: str | None = None


class Failover(TraefikModel):
    service: str
    fallback: str
    health_check: EmptyHealthCheck | None = None


class Service(TraefikModel):
    load_balancer: LoadBalancer | None = None
    failover: Failover | None = None


class Retry(TraefikModel):
    attempts: Annotated[int, Field(ge=1)]
    initial_interval: GoDuration | None = None
    timeout: GoDuration | None = None
    status: list[Annotated[str, Field(pattern=r"^\d{3}(-\d{3})?$")]] | None = None
    disable_retry_on_network_error: bool | None = None
    retry_non_idempotent_method: bool | None = None
    max_request_body_bytes: int | None = None


class Middleware(TraefikModel):
    retry: Retry


class Router(TraefikModel):
    rule: str
    service: str
    entry_points: list[str] | None = None
    middlewares: list[str] | None = None
    priority: int | None = None


class ForwardingTimeouts(TraefikModel):
    dial_timeout: GoDuration | None = None
    response_header_timeout: GoDuration | None = None
    idle_conn_timeout: GoDuration | None = None


class ServersTransport(TraefikModel):
    max_idle_conns_per_host: int | None = None
    forwarding_timeouts: ForwardingTimeouts | None = None


class HttpConfig(TraefikModel):
    routers: dict[str, Router] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    middlewares: dict[str, Middleware] = Field(default_factory=dict)
    servers_transports: dict[str, ServersTransport] = Field(default_factory=dict)


class DynamicConfig(TraefikModel):
    http: HttpConfig

    def dump(self) -> dict[str, Any]:
        # Traefik rejects the whole file over an empty map ("middlewares cannot be a standalone element").
        data = super().dump()
        data["http"] = {key: value for key, value in data["http"].items() if value}
        return data


def validate_dynamic(data: Mapping[str, Any], *, source: str = "rendered dynamic config") -> DynamicConfig:
    """Parse and check a dynamic config as Traefik would see it; ``ConfigError`` names the key path."""
    try:
        config = DynamicConfig.model_validate(dict(data))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = "unknown key (Traefik would reject the whole file)" if error["type"] == "extra_forbidden" \
            else error["msg"]
        raise ConfigError(message, key=key, source=source) from exc
    http = data.get("http")
    problem = _first_problem(config.http, http if isinstance(http, Mapping) else {})
    if problem is not None:
        key, message = problem
        raise ConfigError(message, key=key, source=source)
    return config


def _first_problem(http: HttpConfig, data: Mapping[str, Any]) -> tuple[str, str] | None:
    if not http.routers:
        return "http.routers", "no routers: Traefik would drop every route (an empty config is never valid here)"
    for key, value in data.items():
        if isinstance(value, Mapping) and not value:
            return f"http.{key}", "an empty map: Traefik rejects the whole file ('cannot be a standalone element')"
    for check in (_router_problems, _service_problems, _middleware_problems):
        for problem in check(http):
            return problem
    return None


def _local(reference: str) -> bool:
    return "@" not in reference  # "name@provider" points into another provider; we cannot see it


def _router_problems(http: HttpConfig) -> list[tuple[str, str]]:
    problems = []
    for name, router in http.routers.items():
        if _local(router.service) and router.service not in http.services:
            problems.append((f"http.routers.{name}.service", f"unknown service '{router.service}'"))
        for middleware in router.middlewares or []:
            if _local(middleware) and middleware not in http.middlewares:
                problems.append((f"http.routers.{name}.middlewares", f"unknown middleware '{middleware}'"))
    return problems


def _service_problems(http: HttpConfig) -> list[tuple[str, str]]:
    problems = []
    for name, service in http.services.items():
        key = f"http.services.{name}"
        if (service.load_balancer is None) == (service.failover is None):
            problems.append((key, "needs exactly one of loadBalancer or failover"))
        elif service.load_balancer is not None:
            problems += _balancer_problems(f"{key}.loadBalancer", service.load_balancer, http)
        elif service.failover is not None:
            problems += _failover_problems(f"{key}.failover", service.failover, http)
    return problems


def _balancer_problems(key: str, balancer: LoadBalancer, http: HttpConfig) -> list[tuple[str, str]]:
    problems = []
    if balancer.sticky is not None and balancer.strategy == "hrw":
        problems.append((f"{key}.sticky", "Traefik silently ignores a sticky cookie with strategy hrw"))
    transport = balancer.servers_transport
    if transport is not None and _local(transport) and transport not in http.servers_transports:
        problems.append((f"{key}.serversTransport", f"unknown serversTransport '{transport}'"))
    for index, server in enumerate(balancer.servers):
        try:
            check_url(server.url)
        except ValueError as exc:
            problems.append((f"{key}.servers[{index}].url", str(exc)))
    return problems


def _failover_problems(key: str, failover: Failover, http: HttpConfig) -> list[tuple[str, str]]:
    problems = []
    for field in ("service", "fallback"):
        child = getattr(failover, field)
        if not _local(child):
            continue
        if child not in http.services:
            problems.append((f"{key}.{field}", f"unknown service '{child}'"))
        elif failover.health_check is not None and not _has_health_check(http.services[child]):
            # Traefik would disable the failover and its router ("healthCheck not enabled ...").
            problems.append((f"{key}.{field}", f"service '{child}' needs a healthCheck under a failover healthCheck"))
    return problems


def _has_health_check(service: Service) -> bool:
    if service.load_balancer is not None:
        return service.load_balancer.health_check is not None
    return service.failover is not None and service.failover.health_check is not None


def _middleware_problems(http: HttpConfig) -> list[tuple[str, str]]:
    problems = []
    for name, middleware in http.middlewares.items():
        retry = middleware.retry
        if retry.disable_retry_on_network_error and not retry.status:
            problems.append((f"http.middlewares.{name}.retry",
                             "retries nothing: set status codes or allow retries on network errors"))
    return problems


def write_dynamic(config: DynamicConfig, path: Path) -> None:
    """Write atomically: the file provider watches the file and must never read half of it."""
    import yaml  # only processes that run Traefik pay for it

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(config.dump(), sort_keys=False))

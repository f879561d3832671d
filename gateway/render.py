"""Fleet -> Traefik: static flags and the dynamic config (pure: no I/O, facts come in as arguments).

Design choices, each from a measured Traefik 3.7 behaviour (docs/gateway.md):

* every pool has an active health check, a passive one (first failed request ejects the node until the
  active probe sees it healthy again), and a ``serversTransport`` with dial and response-header timeouts
  (Traefik's defaults are 30 s and unlimited);
* routers retry requests that never reached a node, immediately (a back-off lets the retry land on the
  same dead node); requests that reached a node which then died are retried only for the route groups
  listed in ``retry_in_flight``, because a voice command may then run twice;
* backups use the ``failover`` service on health, never ``failover.errors`` (it drops response headers).
"""

from __future__ import annotations

from dataclasses import dataclass

from jetfleet.durations import go_duration
from jetfleet.gateway.fleet import Fleet, GatewaySettings
from jetfleet.gateway.pools import Member, Pool, plan_pools
from jetfleet.traefik.config import (
    Cookie,
    DynamicConfig,
    EmptyHealthCheck,
    Failover,
    ForwardingTimeouts,
    HttpConfig,
    LoadBalancer,
    Middleware,
    PassiveHealthCheck,
    Retry,
    Router,
    Server,
    ServerHealthCheck,
    ServersTransport,
    Service,
    Sticky,
    validate_dynamic,
)

ENTRYPOINT = "web"
TRANSPORT = "jetson"
RETRY_CONNECT = "retry-connect"
RETRY_IN_FLIGHT = "retry-in-flight"
HEALTH_SERVICE = "gateway-health"
STICKY_COOKIE = "jetfleet_affinity"
# The roles the live registry always routes, so that Traefik never gets an empty config (which would
# remove every route) and clients get 503 "no node" rather than 404 while none is online.
REGISTRY_ROLES = ("voice", "vision")
LATENCY_BUCKETS = "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10"


@dataclass(frozen=True)
class Providers:
    """Where Traefik reads its dynamic config from (a file, the control plane, or both)."""

    file: str | None = None
    http_endpoint: str | None = None
    http_token: str | None = None
    http_ca: str | None = None  # PEM of a private CA that signed an https control plane's certificate


def render_dynamic(fleet: Fleet, *, health_url: str | None = None, always: tuple[str, ...] = ()) -> DynamicConfig:
    """The dynamic config for ``fleet``; validated before it is returned."""
    settings = fleet.gateway
    routers: dict[str, Router] = {}
    services: dict[str, Service] = {}
    used: set[str] = set()
    for pool in plan_pools(fleet, always=always):
        services.update(_pool_services(pool, settings))
        for route in pool.routes:
            middleware = RETRY_IN_FLIGHT if route.group in settings.retry_in_flight else RETRY_CONNECT
            used.add(middleware)
            routers[route.router] = Router(rule=route.rule, service=pool.service, entry_points=[ENTRYPOINT],
                                           middlewares=[middleware])
    if health_url is not None:
        routers[HEALTH_SERVICE], services[HEALTH_SERVICE] = _health_route(health_url)
    middlewares = {name: m for name, m in _retry_middlewares(settings).items() if name in used}
    http = HttpConfig(routers=routers, services=services, middlewares=middlewares,
                      servers_transports={TRANSPORT: _transport(settings)})
    return validate_dynamic(DynamicConfig(http=http).dump())


def render_health_only(health_url: str) -> DynamicConfig:
    """The local file next to the HTTP provider: only the gateway's own /health route."""
    router, service = _health_route(health_url)
    config = DynamicConfig(http=HttpConfig(routers={HEALTH_SERVICE: router}, services={HEALTH_SERVICE: service}))
    return validate_dynamic(config.dump())


def _health_route(health_url: str) -> tuple[Router, Service]:
    router = Router(rule="Path(`/health`)", service=HEALTH_SERVICE, entry_points=[ENTRYPOINT])
    return router, Service(load_balancer=LoadBalancer(servers=[Server(url=health_url)]))


def _pool_services(pool: Pool, settings: GatewaySettings) -> dict[str, Service]:
    if not pool.backups:
        return {pool.service: Service(load_balancer=_balancer(pool.primaries, pool.health_path, settings))}
    primary, backup = f"{pool.service}-primary", f"{pool.service}-backup"
    return {
        pool.service: Service(failover=Failover(service=primary, fallback=backup, health_check=EmptyHealthCheck())),
        primary: Service(load_balancer=_balancer(pool.primaries, pool.health_path, settings)),
        backup: Service(load_balancer=_balancer(pool.backups, pool.health_path, settings)),
    }


def _balancer(members: tuple[Member, ...], health_path: str, settings: GatewaySettings) -> LoadBalancer:
    return LoadBalancer(
        strategy=settings.strategy,
        servers=[Server(url=m.url, weight=m.weight if m.weight != 1 else None) for m in members],
        sticky=Sticky(cookie=Cookie(name=STICKY_COOKIE, http_only=True, same_site="lax")) if settings.sticky else None,
        health_check=ServerHealthCheck(path=health_path, interval=go_duration(settings.health_interval),
                                       unhealthy_interval=go_duration(settings.effective_unhealthy_interval),
                                       timeout=go_duration(settings.health_timeout)),
        passive_health_check=PassiveHealthCheck(failure_window=go_duration(settings.failure_window),
                                                max_failed_attempts=settings.max_failed_attempts),
        servers_transport=TRANSPORT,
    )


def _retry_middlewares(settings: GatewaySettings) -> dict[str, Middleware]:
    attempts = settings.retry_attempts
    return {
        # Network errors before the request was sent (refused, unreachable): always safe to retry.
        RETRY_CONNECT: Middleware(retry=Retry(attempts=attempts)),
        # Also 502 after the request reached a node that then died, POST included: at-least-once.
        RETRY_IN_FLIGHT: Middleware(retry=Retry(attempts=attempts, status=["502"], retry_non_idempotent_method=True)),
    }


def _transport(settings: GatewaySettings) -> ServersTransport:
    return ServersTransport(forwarding_timeouts=ForwardingTimeouts(
        dial_timeout=go_duration(settings.dial_timeout),
        response_header_timeout=go_duration(settings.response_timeout)))


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def static_flags(settings: GatewaySettings, providers: Providers) -> list[str]:
    """Traefik's static configuration as command-line flags (offline, API, metrics, logs, providers)."""
    flags = [
        "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        f"--log.level={settings.log_level}", "--log.noColor=true",
        f"--entryPoints.{ENTRYPOINT}.address={_address(settings.host, settings.port)}",
        f"--entryPoints.traefik.address={_address(settings.api_host, settings.api_port)}",
        "--api.insecure=true", "--ping=true",
        f"--entryPoints.metrics.address={_address(settings.metrics_host, settings.metrics_port)}",
        "--metrics.prometheus=true", "--metrics.prometheus.entryPoint=metrics",
        "--metrics.prometheus.addServicesLabels=true", "--metrics.prometheus.addRoutersLabels=true",
        "--metrics.prometheus.addEntryPointsLabels=true", f"--metrics.prometheus.buckets={LATENCY_BUCKETS}",
    ]
    if settings.access_log:
        flags += ["--accessLog=true", "--accessLog.format=json"]
    if providers.file is not None:
        flags += [f"--providers.file.filename={providers.file}", "--providers.file.watch=true"]
    if providers.http_endpoint is not None:
        flags += [f"--providers.http.endpoint={providers.http_endpoint}",
                  f"--providers.http.pollInterval={go_duration(settings.poll_interval)}",
                  # One change is applied within a poll plus this; the 2 s default would delay bursts.
                  f"--providers.providersThrottleDuration={go_duration(settings.poll_interval / 2)}"]
        if providers.http_token:
            flags.append(f"--providers.http.headers.Authorization=Bearer {providers.http_token}")
        if providers.http_ca:
            flags.append(f"--providers.http.tls.ca={providers.http_ca}")
    return flags

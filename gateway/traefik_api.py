"""Reading Traefik's own view: its API (services, per-server UP/DOWN) and its Prometheus metrics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from jetfleet.errors import TemporaryError


class TraefikUnavailable(TemporaryError):
    """Traefik's API or metrics endpoint did not answer."""


def fetch_services(client: httpx.Client, api_url: str) -> list[dict[str, Any]]:
    """Every HTTP service Traefik runs, with ``serverStatus`` (``/api/http/services``)."""
    try:
        response = client.get(f"{api_url.rstrip('/')}/api/http/services", params={"per_page": 1000})
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TraefikUnavailable(f"Traefik API {api_url} did not answer: {exc or type(exc).__name__}") from exc
    services: list[dict[str, Any]] = response.json()
    return services


def server_status(services: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``{service name: {server url: "UP" | "DOWN"}}`` for the load balancers jetfleet configured."""
    return {s["name"]: dict(s.get("serverStatus") or {}) for s in services if s.get("type") == "loadbalancer"}


@dataclass
class ServiceTraffic:
    requests: float = 0.0
    errors: float = 0.0  # responses with a 5xx status


@dataclass
class TraefikMetrics:
    server_up: dict[str, dict[str, bool]] = field(default_factory=dict)  # service -> url -> up
    services: dict[str, ServiceTraffic] = field(default_factory=dict)
    routers: dict[str, ServiceTraffic] = field(default_factory=dict)


def fetch_metrics(client: httpx.Client, metrics_url: str) -> TraefikMetrics:
    try:
        response = client.get(metrics_url)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TraefikUnavailable(f"Traefik metrics {metrics_url} did not answer: {exc or type(exc).__name__}") from exc
    return parse_metrics(response.text)


def parse_metrics(text: str) -> TraefikMetrics:
    """Per-server liveness and per-service/router request and 5xx counts from Traefik's /metrics."""
    up: dict[str, dict[str, bool]] = defaultdict(dict)
    services: dict[str, ServiceTraffic] = defaultdict(ServiceTraffic)
    routers: dict[str, ServiceTraffic] = defaultdict(ServiceTraffic)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "traefik_service_server_up":
                up[labels["service"]][labels["url"]] = sample.value == 1
            elif sample.name == "traefik_service_requests_total":
                _count(services[labels["service"]], labels, sample.value)
            elif sample.name == "traefik_router_requests_total":
                _count(routers[labels["router"]], labels, sample.value)
    return TraefikMetrics(dict(up), dict(services), dict(routers))


def _count(traffic: ServiceTraffic, labels: dict[str, str], value: float) -> None:
    traffic.requests += value
    if labels.get("code", "").startswith("5"):
        traffic.errors += value

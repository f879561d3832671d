"""``gateway monitor``: every Jetson as it reports itself, next to Traefik's view of it.

Per node: online/offline, robot connected, Whisper model, command count and p50 latency (from the
voice service's ``/health`` and ``/api/voice/status``), and whether Traefik has it UP. Per Traefik
service: requests, 5xx errors and servers up, from Traefik's API and ``/metrics``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from jetfleet.gateway.fleet import SERVICE_ROLES, Fleet
from jetfleet.gateway.health import PROVIDERS
from jetfleet.gateway.live_fleet import endpoint_origin
from jetfleet.gateway.render import HEALTH_SERVICE
from jetfleet.gateway.traefik_api import (
    TraefikMetrics,
    TraefikUnavailable,
    fetch_metrics,
    fetch_services,
    server_status,
)
from jetfleet.protocol import DeviceRecord

PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class NodeTarget:
    name: str
    roles: tuple[str, ...]
    urls: tuple[str, ...]  # every address the gateway may route to on this node
    voice_url: str | None
    registry_status: str | None = None  # "online"/"offline" when the node list comes from the control plane


@dataclass
class NodeView:
    name: str
    roles: list[str]
    online: bool | None  # registry status, else the voice service's /health, else Traefik's probe
    voice_url: str | None
    reachable: bool | None = None
    robot_connected: bool | None = None
    whisper_model: str | None = None
    command_count: int | None = None
    latency_p50_ms: float | None = None
    traefik_up: bool | None = None  # None: Traefik does not route to this node


@dataclass
class ServiceView:
    name: str
    servers_up: int
    servers: int
    requests: int
    errors: int


@dataclass
class Snapshot:
    nodes: list[NodeView]
    services: list[ServiceView] = field(default_factory=list)
    gateway_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def targets_from_fleet(fleet: Fleet) -> list[NodeTarget]:
    return [NodeTarget(node.name, node.roles, tuple(sorted({node.url_for(r) for r in node.roles})),
                       node.url_for("voice") if "voice" in node.roles else None) for node in fleet.nodes]


def targets_from_devices(devices: list[DeviceRecord]) -> list[NodeTarget]:
    targets = []
    for device in devices:
        voice = next((s.url for s in device.services if s.role == "voice"), None)
        routed = [s for s in device.services if s.role in SERVICE_ROLES]
        urls = {s.url for s in routed} | {endpoint_origin(m.endpoint) for m in device.models if m.endpoint}
        roles = tuple(s.role for s in routed) + tuple(m.name for m in device.models if m.serving_version is not None)
        targets.append(NodeTarget(device.device_id, roles, tuple(sorted(u.rstrip("/") for u in urls)), voice,
                                  device.status))
    return targets


def collect(targets: list[NodeTarget], api_url: str, metrics_url: str) -> Snapshot:
    nodes = asyncio.run(_probe_all(targets))
    with httpx.Client(timeout=PROBE_TIMEOUT_SECONDS) as client:
        try:
            services = fetch_services(client, api_url)
            metrics = fetch_metrics(client, metrics_url)
        except TraefikUnavailable as exc:
            return Snapshot(nodes, gateway_error=str(exc))
    ours = [s for s in services if s.get("provider") in PROVIDERS and not s["name"].startswith(HEALTH_SERVICE + "@")]
    status = server_status(ours)
    for node, target in zip(nodes, targets, strict=True):
        node.traefik_up = _traefik_up(target.urls, status)
        if node.online is None:
            node.online = node.traefik_up
    return Snapshot(nodes, _service_views(ours, status, metrics))


async def _probe_all(targets: list[NodeTarget]) -> list[NodeView]:
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as client:
        return list(await asyncio.gather(*(_probe(client, target) for target in targets)))


async def _probe(client: httpx.AsyncClient, target: NodeTarget) -> NodeView:
    online = None if target.registry_status is None else target.registry_status == "online"
    view = NodeView(target.name, list(target.roles), online, target.voice_url)
    if target.voice_url is None:
        return view
    health, status = await asyncio.gather(_get_json(client, target.voice_url + "/health"),
                                          _get_json(client, target.voice_url + "/api/voice/status"))
    view.reachable = health is not None
    if target.registry_status is None:
        view.online = view.reachable
    if health is not None:
        view.robot_connected = _optional_bool(health.get("robot_connected"))
        view.whisper_model = _optional_str(health.get("whisper_model"))
    if status is not None:
        view.command_count = _optional_int(status.get("command_count"))
        view.latency_p50_ms = latency_p50(status)
    return view


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    try:
        response = await client.get(url)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def latency_p50(status: Mapping[str, Any]) -> float | None:
    """The voice service's median command latency, in ms, from its status document."""
    for key in ("latency_p50_ms", "p50_ms"):
        if isinstance(status.get(key), int | float):
            return float(status[key])
    for key in ("latency_ms", "latency"):
        nested = status.get(key)
        if isinstance(nested, Mapping) and isinstance(nested.get("p50"), int | float):
            return float(nested["p50"])
    return None


def _traefik_up(urls: tuple[str, ...], status: Mapping[str, Mapping[str, str]]) -> bool | None:
    seen = [state == "UP" for servers in status.values() for url, state in servers.items() if url in urls]
    return all(seen) if seen else None


def _service_views(services: list[dict[str, Any]], status: Mapping[str, Mapping[str, str]],
                   metrics: TraefikMetrics) -> list[ServiceView]:
    views = []
    for service in sorted(services, key=lambda s: s["name"]):
        servers = status.get(service["name"], {})
        traffic = metrics.services.get(service["name"])
        views.append(ServiceView(service["name"], sum(1 for s in servers.values() if s == "UP"), len(servers),
                                 int(traffic.requests) if traffic else 0, int(traffic.errors) if traffic else 0))
    return views


def _optional_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

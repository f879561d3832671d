"""The live fleet from the device registry: what online devices report they actually serve (pure).

A device joins a pool only with what it reports: a voice (or vision) service whose last health probe
passed, and each model it reports serving (``serving_version`` set) at its endpoint. One device's bad
report (an unusable URL, a model name Traefik cannot route, an address another device already has) is
skipped, with the reason returned for the caller to log; it never breaks the config of the other devices.

A service may report ``weight`` and ``backup`` (the agent config's ``services`` entry): they place that role
like a fleet file's node keys. A device whose roles differ in placement becomes one node per placement
(the default one keeps the device id as its name, the others are named ``<device id>.<role>``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from jetfleet.gateway.fleet import SERVICE_ROLES, Fleet, GatewaySettings, Node
from jetfleet.traefik.config import check_url


@dataclass(frozen=True)
class DeviceView:
    """The columns of an online device that the gateway needs (as stored: plain JSON values)."""

    device_id: str
    services: list[Mapping[str, Any]] = field(default_factory=list)
    models: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RegistryFleet:
    fleet: Fleet
    skipped: tuple[str, ...]  # why a device's role is not routed, one line each


def fleet_from_devices(devices: Iterable[DeviceView], settings: GatewaySettings) -> RegistryFleet:
    nodes: list[Node] = []
    skipped: list[str] = []
    taken: set[tuple[str, str]] = set()  # (role, url): one node per address and role
    for device in sorted(devices, key=lambda d: d.device_id):
        role_urls = {}
        for role, url in served_roles(device, skipped).items():
            if (role, url) in taken:
                skipped.append(f"device {device.device_id}: not routing {role}: another device already reports {url}")
            else:
                role_urls[role] = url
        for node in _nodes(device.device_id, role_urls, placements(device), skipped):
            nodes.append(node)
            taken.update((role, node.url_for(role)) for role in node.roles)
    return RegistryFleet(Fleet(gateway=settings, nodes=tuple(nodes)), tuple(skipped))


def served_roles(device: DeviceView, skipped: list[str]) -> dict[str, str]:
    """``{role: url}`` the device serves right now (healthy services, serving models)."""
    roles: dict[str, str] = {}
    for service in device.services:
        if service.get("role") in SERVICE_ROLES and service.get("healthy") is True:
            _add(roles, device.device_id, str(service["role"]), service.get("url"), skipped)
    for model in device.models:
        if model.get("serving_version") is not None and model.get("endpoint"):
            _add(roles, device.device_id, str(model.get("name")), endpoint_origin(str(model["endpoint"])), skipped)
    return roles


Placement = tuple[int, bool]  # (weight, backup)
DEFAULT_PLACEMENT: Placement = (1, False)


def placements(device: DeviceView) -> dict[str, Placement]:
    """``{role: (weight, backup)}`` for the services that report either (models keep the default)."""
    placed: dict[str, Placement] = {}
    for service in device.services:
        weight, backup = service.get("weight"), service.get("backup")
        if weight is not None or backup is not None:
            placed.setdefault(str(service.get("role")), (int(weight or 1), bool(backup)))
    return placed


def _add(roles: dict[str, str], device_id: str, role: str, url: object, skipped: list[str]) -> None:
    try:
        roles.setdefault(role, check_url(str(url)))
    except ValueError as exc:
        skipped.append(f"device {device_id}: not routing {role}: {exc}")


def endpoint_origin(endpoint: str) -> str:
    """``scheme://host:port`` of a model endpoint (requests keep their own ``/v2/models/...`` path)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else endpoint


def _nodes(device_id: str, role_urls: dict[str, str], placed: dict[str, Placement],
           skipped: list[str]) -> list[Node]:
    good = {}
    for role, url in role_urls.items():
        try:  # validate role by role, so one unroutable model name costs only that model
            Node(name=device_id, url=url, roles=(role,))
        except ValidationError as exc:
            skipped.append(f"device {device_id}: not routing {role}: {exc.errors()[0]['msg']}")
            continue
        good[role] = url
    groups: dict[Placement, dict[str, str]] = {}
    for role, url in good.items():
        groups.setdefault(placed.get(role, DEFAULT_PLACEMENT), {})[role] = url
    nodes = []
    for index, ((weight, backup), urls) in enumerate(sorted(groups.items(), key=lambda g: g[0] != DEFAULT_PLACEMENT)):
        name = device_id if index == 0 else f"{device_id}.{next(iter(urls))}"
        first = next(iter(urls.values()))
        try:
            nodes.append(Node(name=name, url=first, roles=tuple(urls), weight=weight, backup=backup,
                              urls={r: u for r, u in urls.items() if u != first}))
        except ValidationError as exc:
            skipped.append(f"device {device_id}: not routing {', '.join(urls)}: {exc.errors()[0]['msg']}")
    return nodes

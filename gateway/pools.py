"""From a fleet to the pools the gateway balances over: which path goes to which nodes (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from jetfleet.gateway.fleet import Fleet, RouteGroup


@dataclass(frozen=True)
class Route:
    router: str
    group: RouteGroup
    rule: str


@dataclass(frozen=True)
class Member:
    node: str
    url: str
    weight: int
    backup: bool


@dataclass(frozen=True)
class Pool:
    service: str
    role: str
    health_path: str
    routes: tuple[Route, ...]
    members: tuple[Member, ...]

    @property
    def primaries(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.backup)

    @property
    def backups(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.backup)


def _prefix(path: str) -> str:
    return f"PathPrefix(`{path}`)"


def routes_for(role: str) -> tuple[Route, ...]:
    """The paths a role is reached under; every role that is not voice or vision is a model name."""
    if role == "voice":
        return (Route("voice", "voice", _prefix("/api/voice/")), Route("audio", "audio", _prefix("/v1/audio/")))
    if role == "vision":
        return (Route("vision", "vision", _prefix("/api/vision/")),)
    model_path = f"/v2/models/{role}"
    return (Route(service_name(role), "models", f"Path(`{model_path}`) || {_prefix(model_path + '/')}"),)


def service_name(role: str) -> str:
    return role if role in ("voice", "vision") else f"model-{role}"


def health_path(role: str) -> str:
    # Model servers speak KServe v2, whose per-model readiness is the honest probe for "serves NAME".
    return "/health" if role in ("voice", "vision") else f"/v2/models/{role}/ready"


def plan_pools(fleet: Fleet, *, always: tuple[str, ...] = ()) -> list[Pool]:
    """One pool per role, in a stable order; roles in ``always`` get a pool even with no node."""
    pools = []
    for role in sorted(set(fleet.roles()) | set(always)):
        nodes = [node for node in sorted(fleet.nodes, key=lambda n: n.name) if role in node.roles]
        has_primary = any(not node.backup for node in nodes)  # a backup of nothing is simply the pool
        members = tuple(Member(node.name, node.url_for(role), node.weight, node.backup and has_primary)
                        for node in nodes)
        pools.append(Pool(service_name(role), role, health_path(role), routes_for(role), members))
    return pools

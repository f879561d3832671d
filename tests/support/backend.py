"""A real control plane (``jetfleet backend serve``) in a subprocess on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.processes import ManagedProcess, free_port, jetfleet_cmd

ADMIN_TOKEN = "test-admin-token"


class BackendProcess:
    def __init__(self, workdir: Path, database_url: str, extra_args: Sequence[str] = (),
                 admin_token: str = ADMIN_TOKEN, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host
        self.database_url = database_url
        self.extra_args = list(extra_args)
        self.admin_token = admin_token
        self.port = free_port()
        self.url = f"http://{host}:{self.port}"
        self.process: ManagedProcess | None = None
        self._starts = 0

    def start(self, timeout: float = 30.0) -> None:
        self._starts += 1
        argv = jetfleet_cmd("backend", "serve", "--host", self.host, "--port", str(self.port),
                            "--database-url", self.database_url, "--admin-token", self.admin_token,
                            *self.extra_args)
        self.process = ManagedProcess(argv, self.workdir / f"backend-{self.port}-{self._starts}.log",
                                      cwd=self.workdir)
        self.process.wait_http(self.url + "/health", timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill9()
            self.process.stop()
            self.process = None

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"},
                            timeout=30)

    def device(self, device_id: str) -> dict:  # type: ignore[type-arg]
        with self.admin() as client:
            response = client.get(f"/api/v1/edge-devices/{device_id}")
            response.raise_for_status()
            return response.json()  # type: ignore[no-any-return]


@contextmanager
def backend_server(workdir: Path, database_url: str | None = None, extra_args: Sequence[str] = (),
                   admin_token: str = ADMIN_TOKEN, host: str = "127.0.0.1") -> Iterator[BackendProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{workdir / 'backend.db'}"
    backend = BackendProcess(workdir, url, extra_args, admin_token, host)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()

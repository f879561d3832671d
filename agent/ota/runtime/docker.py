"""The ``docker`` executor: one container per model version through the Docker Engine API.

Container ``jetfleet-model-NAME-VERSION`` is run as ``jetfleet.agent.ota.runtime.model_container.run_options`` says
(the model-server image, the version directory read-only at /model and its engines/ read-write, host
networking on its own port, the NVIDIA runtime when the daemon has one) plus the agent's policy:
restart ``unless-stopped`` and labels for the port, a config hash (drift: a container whose hash
differs from what the agent would create now is recreated) and Traefik routing labels for sites that
run Traefik's docker provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from jetfleet.agent.ota.observed import Instance
from jetfleet.agent.ota.runtime.base import LaunchSpec
from jetfleet.agent.ota.runtime.model_container import (
    LABEL_MODEL,
    LABEL_VERSION,
    ModelContainerSpec,
    container_name,
    daemon_runtimes,
    run_options,
)
from jetfleet.errors import PermanentError, TemporaryError
from jetfleet.modelfiles.layout import CONTAINER_MODEL_DIR

log = logging.getLogger("jetfleet.agent.ota")
T = TypeVar("T")
LABEL_PORT = "io.jetfleet.port"
LABEL_HOST = "io.jetfleet.host"
LABEL_HASH = "io.jetfleet.config-hash"
STOP_TIMEOUT_SECONDS = 10


class DockerRuntime:
    kind = "docker"

    def __init__(self, docker_host: str, image: str) -> None:
        self.docker_host = docker_host
        self.image = image
        self._client: Any = None
        self._runtimes: frozenset[str] = frozenset()
        self._started: dict[str, str | None] = {}  # container id -> StartedAt when first checked

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self._translate, function, *args, **kwargs)

    def _translate(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import docker.errors
        import requests

        try:
            return function(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            if exc.status_code is not None and exc.status_code < 500 and exc.status_code != 409:
                raise PermanentError(f"Docker Engine refused: {exc.explanation or exc}") from exc
            raise TemporaryError(f"Docker Engine error: {exc.explanation or exc}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self._client = None  # reconnect next time (the daemon may be restarting)
            raise TemporaryError(f"Docker Engine at {self.docker_host} unavailable: {exc}") from exc

    def _docker(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.docker_host, version="auto", timeout=60)
            self._runtimes = daemon_runtimes(self._client.info())
        return self._client

    async def instances(self) -> list[Instance]:
        containers = await self._call(lambda: self._docker().containers.list(
            all=True, filters={"label": LABEL_HASH}))
        return [self._instance(c) for c in containers if c.status != "removing"]  # already on its way out

    def _instance(self, container: Any) -> Instance:
        labels = container.labels
        spec = LaunchSpec(labels[LABEL_MODEL], int(labels[LABEL_VERSION]), _mount_source(container),
                          int(labels[LABEL_PORT]), labels.get(LABEL_HOST, "127.0.0.1"))
        current = labels.get(LABEL_HASH) == self._config_hash(spec)
        if not current:
            log.info("container %s differs from the current config (image %s); it will be recreated",
                     container.name, self.image)
        return Instance(spec.name, spec.version, spec.port, container.status == "running" and current, container.id)

    async def start(self, spec: LaunchSpec) -> Instance:
        return await self._call(self._start, spec)

    def _start(self, spec: LaunchSpec) -> Instance:

        client = self._docker()
        name = container_name(spec.name, str(spec.version))
        existing = _settled(client, name)
        if existing is not None:
            instance = self._instance(existing)
            if instance.running:
                return instance
            same_port = LaunchSpec(spec.name, spec.version, spec.model_dir, instance.port, spec.bind_host)
            if existing.labels.get(LABEL_HASH) == self._config_hash(same_port):
                self._started.pop(existing.id, None)
                existing.start()  # e.g. stopped by a daemon restart: same port, the route stays valid
                log.info("restarted container %s", name)
                return Instance(spec.name, spec.version, instance.port, True, existing.id)
            existing.remove(force=True)
        container = client.containers.run(**self._options(spec))
        log.info("started container %s (%s, port %d)", name, self.image, spec.port)
        return Instance(spec.name, spec.version, spec.port, True, container.id)

    def _options(self, spec: LaunchSpec) -> dict[str, Any]:
        """The model server's own run options (jetfleet.agent.ota.runtime.model_container) plus the agent's policy."""
        options = run_options(self._container_spec(spec), self._runtimes)
        options["restart_policy"] = {"Name": "unless-stopped"}
        return options

    def _container_spec(self, spec: LaunchSpec) -> ModelContainerSpec:
        return ModelContainerSpec(image=self.image, name=spec.name, version=str(spec.version),
                                  model_dir=spec.model_dir, port=spec.port, host=spec.bind_host,
                                  labels=self._labels(spec))

    def _labels(self, spec: LaunchSpec) -> dict[str, str]:
        router = "jetfleet-" + _safe(spec.name)
        return {
            LABEL_PORT: str(spec.port), LABEL_HOST: spec.bind_host, LABEL_HASH: self._config_hash(spec),
            "traefik.enable": "true",
            f"traefik.http.routers.{router}.rule": f"PathPrefix(`/v2/models/{spec.name}`)",
            f"traefik.http.routers.{router}.service": router,
            f"traefik.http.services.{router}.loadbalancer.server.port": str(spec.port),
        }

    def _config_hash(self, spec: LaunchSpec) -> str:
        """Everything the container was created from, except the labels carrying this hash."""
        plain = ModelContainerSpec(image=self.image, name=spec.name, version=str(spec.version),
                                   model_dir=spec.model_dir, port=spec.port, host=spec.bind_host)
        options = run_options(plain, self._runtimes)
        options["restart_policy"] = {"Name": "unless-stopped"}
        return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]

    async def alive(self, instance: Instance) -> bool:
        import docker.errors

        try:
            container = await self._call(self._docker().containers.get, instance.ident)
        except docker.errors.NotFound:
            return False
        state = container.attrs.get("State", {})
        # a model that cannot load exits and the restart policy brings it back: a new start time means it died
        started = self._started.setdefault(instance.ident, state.get("StartedAt"))
        return bool(state.get("Running")) and not state.get("Restarting") and state.get("StartedAt") == started

    async def stop(self, instance: Instance) -> None:
        import docker.errors

        def stop_and_remove() -> None:
            try:
                container = self._docker().containers.get(instance.ident)
                if container.status == "running":
                    container.stop(timeout=STOP_TIMEOUT_SECONDS)
                container.remove(force=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: its removal is already under way
                    raise
            log.info("removed container %s", container.name)

        await self._call(stop_and_remove)

    async def logs(self, instance: Instance) -> str:
        import docker.errors

        try:
            container = await self._call(self._docker().containers.get, instance.ident)
            raw: bytes = await self._call(container.logs, tail=30)
        except (docker.errors.NotFound, TemporaryError, PermanentError):
            return ""
        return raw.decode(errors="replace")

    async def close(self) -> None:
        """Containers outlive the agent (the daemon keeps them); only the API connection is closed."""
        if self._client is not None:
            await asyncio.to_thread(self._client.close)


def _safe(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9-]", "-", name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def _settled(client: Any, name: str, timeout: float = 120.0) -> Any:
    """The container called ``name``, or None; waits while one is being removed (its name is still taken)."""
    import time

    import docker.errors

    deadline = time.monotonic() + timeout
    while True:
        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return None
        if container.status != "removing" or time.monotonic() > deadline:
            return container
        time.sleep(0.5)


def _mount_source(container: Any) -> Path:
    for mount in container.attrs.get("Mounts", []):
        if mount.get("Destination") == CONTAINER_MODEL_DIR:
            return Path(mount["Source"])
    return Path("/nonexistent")


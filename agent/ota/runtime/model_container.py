"""How a model-server container is run: the ``docker`` SDK keyword arguments, as a pure function.

The agent's executor calls ``client.containers.run(**run_options(spec, daemon_runtimes(client.info())))``
and adds its own policy (restart policy, routing labels). ``runtime=nvidia`` is chosen only when the
daemon reports that runtime (on Jetson it injects the GPU and Tegra libraries; elsewhere it would
make the container fail to start).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetfleet.modelfiles.layout import CONTAINER_MODEL_DIR, ENGINE_CACHE_DIRNAME

NVIDIA_RUNTIME = "nvidia"
LABEL_ROLE = "io.jetfleet.role"
LABEL_MODEL = "io.jetfleet.model"
LABEL_VERSION = "io.jetfleet.model-version"


@dataclass(frozen=True)
class ModelContainerSpec:
    """One model version to serve in a container on the host network."""

    image: str
    name: str
    version: str
    model_dir: Path  # <models_dir>/NAME/VERSION on the host
    port: int
    host: str = "127.0.0.1"
    engine_cache: bool = True  # mount <model_dir>/engines read-write (the agent creates it, owned by uid 10001)
    server_args: tuple[str, ...] = ()  # e.g. ("--runtime", "onnxruntime")
    labels: Mapping[str, str] = field(default_factory=dict)


def container_name(name: str, version: str) -> str:
    return f"jetfleet-model-{name}-{version}"


def daemon_runtimes(info: Mapping[str, Any]) -> frozenset[str]:
    """The runtimes a daemon offers, from ``client.info()`` (``{"Runtimes": {"runc": {...}, ...}}``)."""
    return frozenset(info.get("Runtimes") or {})


def run_options(spec: ModelContainerSpec, runtimes: Collection[str]) -> dict[str, Any]:
    """Keyword arguments for ``docker.DockerClient().containers.run``."""
    volumes = {str(spec.model_dir): {"bind": CONTAINER_MODEL_DIR, "mode": "ro"}}
    if spec.engine_cache:
        volumes[str(spec.model_dir / ENGINE_CACHE_DIRNAME)] = {
            "bind": f"{CONTAINER_MODEL_DIR}/{ENGINE_CACHE_DIRNAME}", "mode": "rw"}
    options: dict[str, Any] = {
        "image": spec.image,
        "name": container_name(spec.name, spec.version),
        "command": ["--model-dir", CONTAINER_MODEL_DIR, "--name", spec.name, "--version", spec.version,
                    "--port", str(spec.port), "--host", spec.host, *spec.server_args],
        "network_mode": "host",
        "volumes": volumes,
        "labels": {LABEL_ROLE: "model-server", LABEL_MODEL: spec.name, LABEL_VERSION: spec.version,
                   **spec.labels},
        "detach": True,
    }
    if NVIDIA_RUNTIME in runtimes:
        options["runtime"] = NVIDIA_RUNTIME
    return options

"""Builds the OTA parts (runtime, router, executor settings) from the agent config, once, at start."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil

from jetfleet.agent.config import AgentConfig
from jetfleet.agent.ota.executor import ExecutorSettings
from jetfleet.agent.ota.observed import Route
from jetfleet.agent.ota.router import DirectRouter, NodeRouter, RouteTable
from jetfleet.agent.ota.runtime.base import ModelRuntime
from jetfleet.agent.ota.runtime.docker import DockerRuntime
from jetfleet.agent.ota.runtime.process import ProcessRuntime
from jetfleet.agent.ota.traefik import TraefikRouter, TraefikSettings
from jetfleet.protocol import HardwareInfo
from jetfleet.traefik.binary import find_traefik


def executor_kind(config: AgentConfig, hardware: HardwareInfo) -> str:
    if config.executor != "auto":
        return config.executor
    return "docker" if hardware.platform == "jetson" else "process"


def make_runtime(config: AgentConfig, hardware: HardwareInfo, ota_dir: Path) -> ModelRuntime:
    if executor_kind(config, hardware) == "docker":
        return DockerRuntime(config.docker_host, config.model_image)
    return ProcessRuntime(ota_dir)


def upstream_host(config: AgentConfig) -> str:
    """Where the agent and the router reach model servers."""
    return "127.0.0.1" if config.model_bind_host in ("0.0.0.0", "") else config.model_bind_host


def local_endpoint(config: AgentConfig, route: Route) -> str:
    """The model endpoint as the agent itself reaches it (loopback for a wildcard listener)."""
    if config.model_router == "none":
        return f"http://{_url_host(upstream_host(config))}:{route.port}"
    host = config.model_router_host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    return f"http://{_url_host(host)}:{config.model_router_port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def make_router(config: AgentConfig, ota_dir: Path) -> NodeRouter:
    table = RouteTable(ota_dir / "routes.json")
    if config.model_router == "none":
        host = node_address() if config.model_bind_host in ("0.0.0.0", "") else config.model_bind_host
        return DirectRouter(table, host)
    host = node_address() if config.model_router_host in ("0.0.0.0", "") else config.model_router_host
    advertised = config.model_endpoint_url or f"http://{host}:{config.model_router_port}"
    settings = TraefikSettings(binary=traefik_binary(config), host=config.model_router_host,
                               port=config.model_router_port, api_port=config.model_router_api_port,
                               advertised_url=advertised, upstream_host=upstream_host(config),
                               response_timeout_seconds=max(config.ota_health_timeout, 300.0))
    return TraefikRouter(table, settings, ota_dir / "traefik")


def traefik_binary(config: AgentConfig) -> Path | None:
    """The configured binary (which must exist), else one on PATH or next to Python, else None."""
    return find_traefik(config.model_router_binary, key="model_router_binary")


def node_address() -> str:
    """This node's first non-loopback IPv4 address (the endpoint other machines use), else 127.0.0.1."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return "127.0.0.1"


def executor_settings(config: AgentConfig, device_id: str) -> ExecutorSettings:
    return ExecutorSettings(
        backend_url=config.backend_url, device_id=device_id, bind_host=config.model_bind_host,
        upstream_host=upstream_host(config), port_range=config.model_port_range,
        download_timeout=config.ota_download_timeout, ready_timeout=config.ota_ready_timeout,
        convert_timeout=config.ota_convert_timeout, health_timeout=config.ota_health_timeout,
        switch_timeout=config.ota_switch_timeout, drain_seconds=config.ota_drain_seconds,
        request_timeout=max(config.request_timeout, 30.0))

"""Composes the agent from its parts and runs it until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from jetfleet.agent.client import BackendClient, HeartbeatResult
from jetfleet.agent.config import AgentConfig
from jetfleet.agent.exporter import JobsCollector, MetricsServer, build_registry, serve_metrics
from jetfleet.agent.hardware import probe_hardware
from jetfleet.agent.heartbeat import DeviceProfile, HeartbeatLoop, HeartbeatSources
from jetfleet.agent.http import client_for
from jetfleet.agent.identity import IdentityStore, resolve_device_id
from jetfleet.agent.jobs.service import JobsService
from jetfleet.agent.metrics.collector import MetricsCollector
from jetfleet.agent.ota.service import OtaService
from jetfleet.agent.services import probe_services
from jetfleet.agent.state import HeartbeatCounters
from jetfleet.protocol import ServiceEndpoint

log = logging.getLogger("jetfleet.agent")
SHUTDOWN_GRACE_SECONDS = 1.5


class Agent:
    """One device's agent: metrics collector, exporter and heartbeat loop around one config."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.counters = HeartbeatCounters()
        self.store = IdentityStore(config.state_dir)
        self.device_id = resolve_device_id(config.device_id, self.store.load(), config.host_root)
        self.collector = MetricsCollector.detect(host_root=config.host_root, tegrastats_path=config.tegrastats_path,
                                                 disk_paths=_disk_paths(config))
        self.hardware = probe_hardware(config.host_root, nvml=self.collector.nvml)
        self.client = BackendClient(config.backend_url, timeout=config.request_timeout,
                                    provisioning_key=config.api_key, ca_bundle=config.ca_bundle)
        self._probe_http = client_for(service.url for service in config.services)
        self.metrics_server: MetricsServer | None = None
        self.ota = OtaService(config, device_id=self.device_id, hardware=self.hardware,
                              token=lambda: self.heartbeat.token)
        self.jobs = JobsService(config, device_id=self.device_id, models=self.ota, client=self.client,
                                token=lambda: self.heartbeat.token)
        self.ota.on_desired = self.jobs.wake
        self.heartbeat = HeartbeatLoop(profile=self._profile(), client=self.client, store=self.store,
                                       sources=self._sources(), counters=self.counters,
                                       on_registered=self.ota.on_registered, on_response=self.ota.on_response)
        self.background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = [self.heartbeat.run,
                                                                                      self.ota.run, self.jobs.run]

    def _profile(self) -> DeviceProfile:
        c = self.config
        return DeviceProfile(device_id=self.device_id, device_name=c.device_name, device_type=c.device_type,
                             location=c.location, hardware=self.hardware, heartbeat_interval=c.heartbeat_interval,
                             labels=dict(c.labels))

    def _sources(self) -> HeartbeatSources:
        async def probe() -> list[ServiceEndpoint]:
            services = await probe_services(self.config.services, self._probe_http) if self.config.services else []
            return services + self._own_services()

        return HeartbeatSources(metrics=lambda: self.collector.snapshot().to_heartbeat(), services=probe,
                                models=self.ota.statuses, manifest_keys=self.ota.trusted_keys, outbox=self.jobs.status)

    def _own_services(self) -> list[ServiceEndpoint]:
        """The exporter, so that Prometheus can discover it from the registry (a wildcard host means
        "the address the control plane sees my heartbeats from")."""
        if self.metrics_server is None:
            return []
        host = self.config.metrics_host
        host = f"[{host}]" if ":" in host else host
        return [ServiceEndpoint(role="metrics", url=f"http://{host}:{self.metrics_server.port}", healthy=True)]

    def start(self) -> None:
        self.collector.start()
        if self.config.metrics_port:
            registry = build_registry(self.collector, hardware=self.hardware, device_id=self.device_id,
                                      counters=self.counters, extra=[JobsCollector(self.jobs.exported,
                                                                                   self.jobs.counters)])
            self.metrics_server = serve_metrics(registry, self.config.metrics_host, self.config.metrics_port)
            log.info("metrics on http://%s:%d/metrics", self.config.metrics_host, self.metrics_server.port)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until ``stop``; a loop that crashes ends the agent (systemd restarts it)."""
        tasks = [asyncio.create_task(loop(stop)) for loop in self.background]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                raise RuntimeError("an agent loop crashed") from task.exception()

    async def close(self) -> None:
        await self.ota.close()
        await self.jobs.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.collector.close()
        await self._probe_http.aclose()
        await self.client.aclose()


def _disk_paths(config: AgentConfig) -> list[Path]:
    paths = [Path("/")]
    if config.models_dir.exists() and config.models_dir != Path("/"):
        paths.append(config.models_dir)
    return paths


async def run_agent(config: AgentConfig) -> None:
    """The daemon: start, run until SIGTERM/SIGINT, stop cleanly."""
    agent = Agent(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("jetfleet agent starting: device %s (%s), control plane %s", agent.device_id,
             config.device_name, config.backend_url)
    try:
        agent.start()
        await agent.run(stop)
    finally:
        await agent.close()
        log.info("agent stopped")


async def run_once(config: AgentConfig) -> tuple[str, HeartbeatResult]:
    """Register if needed and send one heartbeat (``agent run --once``)."""
    agent = Agent(config)
    try:
        agent.collector.start()
        return agent.device_id, await agent.heartbeat.once()
    finally:
        await agent.close()

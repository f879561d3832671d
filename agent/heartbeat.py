"""Registration and the heartbeat loop: keeps running through control-plane outages, resumes by itself."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

import jetfleet
from jetfleet.agent.client import BackendClient, HeartbeatResult
from jetfleet.agent.identity import Identity, IdentityStore
from jetfleet.agent.state import HeartbeatCounters
from jetfleet.errors import AuthError, ConflictError, NotFoundError, PermanentError, TemporaryError
from jetfleet.jobs import OutboxStatus
from jetfleet.protocol import (
    HardwareInfo,
    Heartbeat,
    HeartbeatResponse,
    Metrics,
    ModelStatus,
    RegisterRequest,
    RegisterResponse,
    ServiceEndpoint,
)

log = logging.getLogger("jetfleet.agent.heartbeat")
PERMANENT_RETRY_SECONDS = 60.0


class StopRequested(Exception):
    """The agent is shutting down."""


@dataclass(frozen=True)
class DeviceProfile:
    """How this device describes itself at registration."""

    device_id: str
    device_name: str
    device_type: str
    location: str
    hardware: HardwareInfo
    heartbeat_interval: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HeartbeatSources:
    """Where each heartbeat's content comes from (read fresh on every beat)."""

    metrics: Callable[[], Metrics]
    models: Callable[[], list[ModelStatus]] = field(default=list)
    services: Callable[[], Awaitable[list[ServiceEndpoint]]] | None = None
    manifest_keys: Callable[[], list[str]] = field(default=list)
    outbox: Callable[[], OutboxStatus | None] = lambda: None


class LinkState:
    """Logs control-plane reachability once per change, not once per attempt."""

    def __init__(self, backend_url: str) -> None:
        self.backend_url = backend_url
        self.reachable: bool | None = None
        self._refusal: str | None = None

    def up(self, interval: float) -> None:
        if self.reachable is not True:
            log.info("connected to control plane %s; heartbeat every %.0fs", self.backend_url, interval)
        self.reachable = True

    def refused(self, reason: str) -> None:
        if self.reachable is not None or self._refusal != reason:
            log.error("control plane %s refused this device: %s", self.backend_url, reason)
        self.reachable, self._refusal = None, reason

    def down(self, reason: str) -> None:
        if self.reachable is not False:
            log.warning("control plane %s unreachable (%s); retrying in the background", self.backend_url, reason)
        else:
            log.debug("still unreachable: %s", reason)
        self.reachable = False


class HeartbeatLoop:
    def __init__(self, *, profile: DeviceProfile, client: BackendClient, store: IdentityStore,
                 sources: HeartbeatSources, counters: HeartbeatCounters,
                 on_registered: Callable[[RegisterResponse], None] = lambda _r: None,
                 on_response: Callable[[HeartbeatResponse], None] = lambda _r: None,
                 rng: random.Random | None = None) -> None:
        self.profile = profile
        self.client = client
        self.store = store
        self.sources = sources
        self.counters = counters
        self.on_registered = on_registered
        self.on_response = on_response
        self.interval = profile.heartbeat_interval
        self.link = LinkState(client.base_url)
        self._rng = rng or random.Random()
        self._token: str | None = self._stored_token()
        self._registered = False
        self._etag: str | None = None

    @property
    def token(self) -> str | None:
        """The device token (also used to download model artifacts)."""
        return self._token

    def _stored_token(self) -> str | None:
        identity = self.store.load()
        if identity is None or identity.device_id != self.profile.device_id:
            return None
        return identity.token_for(self.client.base_url)

    async def run(self, stop: asyncio.Event) -> None:
        """Register, then heartbeat every interval (with jitter) until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    await self._retrying(stop)(self._pass)
                except PermanentError as exc:  # e.g. the id is taken: wait for an admin, keep running
                    self.counters.record_failure()
                    self.link.refused(str(exc))
                    await _sleep_or_stop(stop, max(self.interval, PERMANENT_RETRY_SECONDS))
                    continue
                await _sleep_or_stop(stop, self.interval * self._rng.uniform(0.9, 1.1))
        except StopRequested:
            log.info("heartbeat loop stopped")

    async def once(self) -> HeartbeatResult:
        """One registration (if needed) and one heartbeat, without retries."""
        return await self._pass()

    def _retrying(self, stop: asyncio.Event) -> AsyncRetrying:
        cap = min(30.0, max(self.interval, 1.0))
        return AsyncRetrying(wait=wait_random_exponential(multiplier=0.5, max=cap),
                             retry=retry_if_exception_type(TemporaryError),
                             sleep=lambda delay: _sleep_or_stop(stop, delay),
                             before_sleep=self._on_retry, reraise=True)

    def _on_retry(self, state: RetryCallState) -> None:
        self.counters.record_failure()
        exc = state.outcome.exception() if state.outcome else None
        self.link.down(str(exc))

    async def _pass(self) -> HeartbeatResult:
        if not self._registered:
            await self._register()
        try:
            result = await self._beat()
        except (NotFoundError, AuthError) as exc:
            log.warning("control plane no longer accepts this device (%s); registering again", exc)
            self._registered = False
            raise TemporaryError(str(exc), delay=0) from exc
        self.counters.record_success()
        self.link.up(self.interval)
        return result

    async def _register(self) -> None:
        response = await self.client.register(self._register_request(), self._token)
        if response.device_token:
            self._token = response.device_token
            self.store.save(Identity(self.profile.device_id, self._token, self.client.base_url))
            log.info("registered as %s with %s", self.profile.device_id, self.client.base_url)
        elif self._token is None:
            raise ConflictError("the control plane returned no token for a new registration")
        self.interval = response.config.heartbeat_interval
        self._registered = True
        self._etag = None
        self.on_registered(response)

    def _register_request(self) -> RegisterRequest:
        p = self.profile
        return RegisterRequest(device_id=p.device_id, device_name=p.device_name, device_type=p.device_type,
                               location=p.location, hardware=p.hardware, agent_version=jetfleet.__version__,
                               heartbeat_interval=p.heartbeat_interval, labels=p.labels)

    async def _beat(self) -> HeartbeatResult:
        assert self._token is not None
        services = await self.sources.services() if self.sources.services else []
        beat = Heartbeat(metrics=await asyncio.to_thread(self.sources.metrics), models=self.sources.models(),
                         services=services, agent_version=jetfleet.__version__,
                         manifest_keys=self.sources.manifest_keys(),
                         outbox=await asyncio.to_thread(self.sources.outbox))
        result = await self.client.heartbeat(self.profile.device_id, self._token, beat, self._etag)
        self._etag = result.etag
        if result.response is not None:
            self.interval = result.response.config.heartbeat_interval
            self.on_response(result.response)
        return result


async def _sleep_or_stop(stop: asyncio.Event, delay: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, delay))
    except asyncio.TimeoutError:
        return
    raise StopRequested()

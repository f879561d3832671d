"""The control plane's FastAPI application."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

import jetfleet
from jetfleet.backend import (
    api_access,
    api_devices,
    api_drift,
    api_gateway,
    api_jobs,
    api_models,
    api_monitoring,
    api_rollouts,
    replicas,
)
from jetfleet.backend.artifacts import ArtifactStore
from jetfleet.backend.audit import AuditMiddleware
from jetfleet.backend.auth import require_read
from jetfleet.backend.desired_state import DesiredState
from jetfleet.backend.drift_monitor import DriftCollector, DriftMonitor
from jetfleet.backend.ingest import HeartbeatIngest
from jetfleet.backend.leadership import LeaderCollector
from jetfleet.backend.metrics import BackendCounters, FleetCollector
from jetfleet.backend.replica_settings import SettingsCollector
from jetfleet.backend.replicas import ReplicaStatus
from jetfleet.backend.results import BodyTooLarge
from jetfleet.backend.rollouts import RolloutEngine
from jetfleet.backend.settings import BackendSettings
from jetfleet.backend.signing import Signer
from jetfleet.errors import AuthError, ConflictError, JetfleetError, NotFoundError, PermanentError
from jetfleet.httpapi import finish_contract

log = logging.getLogger("jetfleet.backend")

_STATUS_BY_ERROR: list[tuple[type[JetfleetError], int]] = [
    (NotFoundError, 404),
    (BodyTooLarge, 413),
    (AuthError, 401),
    (ConflictError, 409),
    (PermanentError, 400),
    (JetfleetError, 503),
]


def create_app(settings: BackendSettings, engine: Engine, *, signer: Signer | None = None) -> FastAPI:
    """Build the app around an already-migrated ``engine``; ``signer`` signs the devices' manifests."""
    sessions = sessionmaker(engine, expire_on_commit=False)
    ingest = HeartbeatIngest(sessions, settings)
    desired = DesiredState(settings, sessions, signer)
    this = replicas.replica(settings, sessions, desired, ingest)
    monitor = DriftMonitor(sessions, settings, leadership=this.leadership)
    rollout_engine = RolloutEngine(sessions, desired, interval=settings.rollout_interval, before_read=ingest.flush,
                                   leadership=this.leadership)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        began = time.perf_counter()
        await run_in_threadpool(this.start_listening)
        devices = await run_in_threadpool(ingest.preload)
        await run_in_threadpool(desired.preload)
        log.info("loaded %d devices' tokens and desired state in %.2f s", devices, time.perf_counter() - began)
        await run_in_threadpool(this.leadership.start)
        ingest.start()
        monitor.start()
        rollout_engine.start()
        try:
            yield
        finally:
            rollout_engine.stop()
            monitor.stop()
            this.stop()
            ingest.stop()  # writes the last pending heartbeats

    app = FastAPI(title="jetfleet control plane", version=jetfleet.__version__, lifespan=lifespan,
                  description="Device registry, heartbeats, model registry and OTA for Jetson fleets.",
                  generate_unique_id_function=_operation_id)
    registry = CollectorRegistry()
    registry.register(FleetCollector(sessions, before_read=ingest.flush))
    registry.register(DriftCollector(monitor))
    registry.register(LeaderCollector(this.leadership))
    if this.settings_check is not None:
        registry.register(SettingsCollector(settings.replica_name, this.settings_check))
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.ingest = ingest
    app.state.desired = desired
    app.state.rollouts = rollout_engine
    app.state.replica = this
    app.state.artifacts = ArtifactStore(settings.artifacts_dir, settings.uploads_dir, settings.max_upload_bytes)
    app.state.counters = BackendCounters(registry)
    app.state.manifest_public_key = signer.current.public_b64 if signer else None

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/status", tags=["health"], response_model=ReplicaStatus, dependencies=[Depends(require_read)])
    def replica_status() -> ReplicaStatus:
        """Which control-plane replica answered and whether it leads (docs/ha.md)."""
        return this.status()

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api_devices.router)
    app.include_router(api_models.device_router)
    app.include_router(api_models.router)
    app.include_router(api_monitoring.router)
    app.include_router(api_gateway.router)
    app.include_router(api_access.router)
    app.include_router(api_jobs.router)
    app.include_router(api_jobs.device_router)
    app.include_router(api_drift.router)
    app.include_router(api_rollouts.router)
    app.include_router(api_rollouts.labels_router)
    app.add_exception_handler(JetfleetError, _jetfleet_error)
    app.add_middleware(AuditMiddleware, sessions=sessions)
    finish_contract(app)
    return app


def _operation_id(route: APIRoute) -> str:
    """The handler's name: stable, so that OpenAPI links and generated clients can refer to it."""
    return route.name


async def _jetfleet_error(_request: Request, exc: Exception) -> JSONResponse:
    code = next(status for kind, status in _STATUS_BY_ERROR if isinstance(exc, kind))
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse({"detail": str(exc)}, status_code=code, headers=headers)

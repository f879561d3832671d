"""Typed access to what the app keeps on ``app.state`` (set up in jetfleet.backend.app), shared by the API modules."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend.artifacts import ArtifactStore
from jetfleet.backend.desired_state import DesiredState
from jetfleet.backend.settings import BackendSettings


def now() -> datetime:
    return datetime.now(timezone.utc)


def settings(request: Request) -> BackendSettings:
    value: BackendSettings = request.app.state.settings
    return value


def sessions(request: Request) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    return factory


def artifacts(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.artifacts
    return store


def desired(request: Request) -> DesiredState:
    value: DesiredState = request.app.state.desired
    return value

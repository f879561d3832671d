"""Fixtures shared by the whole suite. Role-specific fixtures live in each test folder's conftest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess, backend_server
from tests.support.postgres import PostgresServer, create_database, postgres_server

pytest_plugins = ["tests.support.docker_engine"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """One real control plane per database kind, shared by the tests that take it."""
    workdir = tmp_path_factory.mktemp(f"backend-{request.param}")
    url = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = create_database(server, f"jf_{uuid.uuid4().hex[:8]}")
    with backend_server(workdir, url) as process:
        yield process


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[BackendProcess]:
    """A private control plane on SQLite, for tests that stop or reconfigure it."""
    with backend_server(tmp_path / "backend") as process:
        yield process


def unique_id(prefix: str = "dev") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"

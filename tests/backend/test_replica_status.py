"""``GET /api/v1/status`` and the leader gauge on a lone control plane: it leads on either database; only
PostgreSQL makes it listen for other replicas (SQLite stays one process, nothing shared)."""

from __future__ import annotations

from tests.support.backend import BackendProcess


def test_a_lone_control_plane_leads_and_listens_only_on_postgres(backend: BackendProcess) -> None:
    postgres = backend.database_url.startswith("postgresql")
    with backend.admin() as admin:
        status = admin.get("/api/v1/status").json()
        metrics = admin.get("/metrics").text
    assert status["leader"] is True and status["shared_database"] is postgres and status["listening"] is postgres
    assert status["database"] == ("postgresql" if postgres else "sqlite")
    assert f'jetfleet_control_plane_leader{{replica="{status["replica"]}"}} 1.0' in metrics


def test_the_status_needs_a_token(backend: BackendProcess) -> None:
    import httpx

    assert httpx.get(f"{backend.url}/api/v1/status", timeout=10).status_code == 401

"""Scoped API tokens, the audit log, and secrets kept out of every log: a real control plane, real CLI, real agent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import create_engine

from jetfleet.backend.app import create_app
from jetfleet.backend.auth import declared_scope
from jetfleet.backend.settings import BackendSettings
from tests.ota.nodes import Node, wait_registered
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until

# Routes a device calls with its own token (or, to register, with the fleet's provisioning key).
DEVICE_ROUTES = {"register_device", "heartbeat", "device_artifact", "upload_results"}


def cli(backend: BackendProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args, "--backend-url", backend.url, "--token", token),
                          capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120)


def create_token(backend: BackendProcess, name: str, scope: str, *extra: str) -> str:
    done = cli(backend, backend.admin_token, "tokens", "create", name, "--scope", scope, *extra)
    assert done.returncode == 0, done.stderr
    assert "not shown again" in done.stderr
    return done.stdout.strip()


def test_every_api_route_declares_a_scope() -> None:
    """A route added on another branch without ``Depends(require_scope(...))`` fails here."""
    app = create_app(BackendSettings(database_url="sqlite://", admin_token="x" * 16), create_engine("sqlite://"))
    checked = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not str(context.path).startswith("/api/v1"):
            continue
        calls = [dependency.call for dependency in route.dependant.dependencies]
        scope = declared_scope(calls)
        assert scope is not None, f"{context.path} ({route.name}) declares no scope: add " \
                                  "dependencies=[Depends(require_scope('read'|'deploy'|'admin'))]"
        assert (scope == "device") == (route.name in DEVICE_ROUTES), f"{route.name}: {scope}"
        checked.append(route.name)
    assert {"list_devices", "move_tag", "create_token", "audit_log"} <= set(checked)


def test_scopes_expiry_revocation_and_the_audit_log(tmp_path: Path) -> None:
    with backend_server(tmp_path / "backend") as backend:
        reader = create_token(backend, "grafana", "read")
        deployer = create_token(backend, "ci", "deploy")
        brief = create_token(backend, "brief", "read", "--expires", "2s")
        headers = {"Authorization": f"Bearer {reader}"}
        assert httpx.get(f"{backend.url}/api/v1/models", headers=headers).status_code == 200
        assert httpx.get(f"{backend.url}/api/v1/prometheus/targets", headers=headers).status_code == 200
        assert httpx.get(f"{backend.url}/api/v1/gateway/traefik", headers=headers).status_code == 200
        refused = httpx.put(f"{backend.url}/api/v1/models/resnet/tags/prod", json={"version": 1}, headers=headers)
        assert refused.status_code == 403 and "needs the 'deploy' scope" in refused.json()["detail"]
        moved = httpx.put(f"{backend.url}/api/v1/models/resnet/tags/prod", json={"version": 1},
                          headers={"Authorization": f"Bearer {deployer}"})
        assert moved.status_code == 404  # allowed; the model does not exist
        not_admin = cli(backend, deployer, "fleet", "remove", "some-device")
        assert not_admin.returncode == 2 and "needs the 'admin' scope" in not_admin.stderr
        wait_until(lambda: httpx.get(f"{backend.url}/api/v1/models",
                                     headers={"Authorization": f"Bearer {brief}"}).status_code == 401,
                   10, what="the 2 s token expires")
        assert "expired" in httpx.get(f"{backend.url}/api/v1/models",
                                      headers={"Authorization": f"Bearer {brief}"}).json()["detail"]
        assert cli(backend, backend.admin_token, "tokens", "revoke", "grafana").returncode == 0
        revoked = httpx.get(f"{backend.url}/api/v1/models", headers=headers)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
        listed = json.loads(cli(backend, backend.admin_token, "tokens", "ls", "--json").stdout)
        assert {t["name"]: t["state"] for t in listed} == {"brief": "expired", "ci": "active", "grafana": "revoked"}
        assert all("token" not in t and reader not in json.dumps(t) for t in listed)

        audit = cli(backend, backend.admin_token, "audit", "--since", "1h", "--json")
        events = [(e["actor"], e["operation"], e["target"], e["status"]) for e in json.loads(audit.stdout)]
        assert ("admin", "create_token", "name=ci scope=deploy", 201) in events
        assert ("grafana", "move_tag", "name=resnet tag=prod", 403) in events
        assert ("ci", "move_tag", "name=resnet tag=prod", 404) in events
        assert ("ci", "remove_device", "device_id=some-device", 403) in events
        assert ("admin", "revoke_token", "name=grafana", 200) in events
        assert all(e["address"] == "127.0.0.1" for e in json.loads(audit.stdout))
        table = cli(backend, backend.admin_token, "audit")
        assert table.returncode == 0 and "create_token" in table.stdout
        since = cli(backend, backend.admin_token, "audit", "--since", "2099-01-01T00:00:00Z", "--json")
        assert json.loads(since.stdout) == []


def test_no_secret_reaches_any_log(tmp_path: Path) -> None:
    """Issue every kind of secret in one flow, then grep the control plane's and the agent's logs for each."""
    provisioning_key = "provisioning-key-7d1f0c9e5a"
    with backend_server(tmp_path / "backend", extra_args=["--provisioning-key", provisioning_key,
                                                          "--log-level", "debug", "--access-log"]) as backend:
        api_token = create_token(backend, "pipeline", "deploy")
        node = Node(tmp_path / "nodes", backend.url, "secret-node", api_key=provisioning_key, log_level="DEBUG",
                    model_router="none").start()
        try:
            wait_registered(backend, node)
            identity = json.loads((node.dir / "state" / "identity.json").read_text())
            device_token = identity["device_token"]
            with httpx.Client(base_url=backend.url, headers={"Authorization": f"Bearer {api_token}"}) as client:
                assert client.get("/api/v1/edge-devices/secret-node").status_code == 200
            wait_until(lambda: backend.device("secret-node")["last_heartbeat"] is not None, 30, what="a heartbeat")
            bad = httpx.get(f"{backend.url}/api/v1/models", headers={"Authorization": "Bearer wrong-secret-1234"})
            assert bad.status_code == 401
        finally:
            node.stop()
        logs = {path: path.read_text(errors="replace") for path in
                [*tmp_path.rglob("*.log")] if path.is_file()}
    assert any("backend-" in p.name for p in logs) and any(node.dir in p.parents for p in logs)
    secrets = {"admin token": backend.admin_token, "provisioning key": provisioning_key, "API token": api_token,
               "refused token": "wrong-secret-1234", "device token": device_token}
    for what, secret in secrets.items():
        for path, text in logs.items():
            assert secret not in text, f"the {what} appears in {path}"

"""The device API against a real control plane process, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import unique_id
from tests.support.backend import BackendProcess

HARDWARE = {"platform": "jetson", "arch": "aarch64", "module": "AGX Orin 32GB", "l4t": "36.4.4", "jetpack": "6.2.1"}


def register(backend: BackendProcess, device_id: str, token: str | None = None, **fields: Any) -> httpx.Response:
    body = {"device_id": device_id, "device_name": fields.pop("device_name", "jetson-a"), "hardware": HARDWARE,
            **fields}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{backend.url}/api/v1/edge-devices/register", json=body, headers=headers, timeout=10)


def heartbeat(backend: BackendProcess, device_id: str, token: str, body: dict[str, Any] | None = None,
              etag: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    return httpx.post(f"{backend.url}/api/v1/edge-devices/{device_id}/heartbeat", json=body or {},
                      headers=headers, timeout=10)


def test_health_and_openapi(backend: BackendProcess) -> None:
    assert httpx.get(f"{backend.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{backend.url}/docs").status_code == 200
    paths = httpx.get(f"{backend.url}/openapi.json").json()["paths"]
    assert "/api/v1/edge-devices/register" in paths
    assert "/api/v1/edge-devices/{device_id}/heartbeat" in paths


def test_register_returns_token_once_and_is_idempotent_with_it(backend: BackendProcess) -> None:
    device_id = unique_id()
    first = register(backend, device_id, location="Lab 1", heartbeat_interval=15)
    assert first.status_code == 201
    body = first.json()
    token = body["device_token"]
    assert token and len(token) >= 40
    assert body["device"]["device_id"] == device_id
    assert body["device"]["location"] == "Lab 1"
    assert body["config"]["heartbeat_interval"] == 15
    assert body["device"]["status"] == "offline"  # registered, no heartbeat yet

    again = register(backend, device_id, token=token, device_name="renamed")
    assert again.status_code == 200
    assert again.json()["device_token"] is None
    assert backend.device(device_id)["device_name"] == "renamed"


def test_another_caller_cannot_take_over_a_device_id(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id).json()["device_token"]
    for intruder_token in (None, "not-the-token"):
        response = register(backend, device_id, token=intruder_token, device_name="intruder")
        assert response.status_code == 409
        assert device_id in response.json()["detail"]
        assert "reprovision" in response.json()["detail"]
    assert backend.device(device_id)["device_name"] == "jetson-a"
    assert heartbeat(backend, device_id, token).status_code == 200


def test_admin_reprovision_lets_the_next_registration_claim_the_id(backend: BackendProcess) -> None:
    device_id = unique_id()
    old_token = register(backend, device_id).json()["device_token"]
    with backend.admin() as admin:
        assert admin.post(f"/api/v1/edge-devices/{device_id}/reprovision").status_code == 200
    claimed = register(backend, device_id, device_name="replacement")
    assert claimed.status_code == 201
    new_token = claimed.json()["device_token"]
    assert new_token != old_token
    assert heartbeat(backend, device_id, old_token).status_code == 401
    assert heartbeat(backend, device_id, new_token).status_code == 200


def test_heartbeat_records_metrics_and_answers_desired_state(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id, heartbeat_interval=30).json()["device_token"]
    metrics = {"cpu_utilization_ratio": 0.25, "memory_used_bytes": 1 << 30, "memory_total_bytes": 32 << 30,
               "temperatures_celsius": {"cpu": 52.5, "tj": 53.0}, "power_watts": {"VDD_GPU_SOC": 2.4}}
    models = [{"name": "yolov8n", "serving_version": 3, "state": "committed"}]
    response = heartbeat(backend, device_id, token, {"metrics": metrics, "models": models})
    assert response.status_code == 200
    answer = response.json()
    assert (answer["ota"], answer["config"]) == ([], {"heartbeat_interval": 30.0, "offline_after_missed": 3})
    assert '"models":[]' in answer["manifest"]["payload"]  # signed, nothing deployed
    record = backend.device(device_id)
    assert record["status"] == "online"
    assert record["metrics"]["cpu_utilization_ratio"] == 0.25
    assert record["metrics"]["temperatures_celsius"] == {"cpu": 52.5, "tj": 53.0}
    assert record["models"][0]["serving_version"] == 3
    assert record["last_heartbeat"] is not None


def test_unchanged_desired_state_answers_304_and_a_change_answers_200(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id, heartbeat_interval=30).json()["device_token"]
    first = heartbeat(backend, device_id, token)
    etag = first.headers["ETag"]
    unchanged = heartbeat(backend, device_id, token, etag=etag)
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    register(backend, device_id, token=token, heartbeat_interval=10)  # the device's config changes
    changed = heartbeat(backend, device_id, token, etag=etag)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json()["config"]["heartbeat_interval"] == 10
    assert backend.device(device_id)["status"] == "online"  # the 304 beat was recorded too


def test_heartbeat_errors(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id).json()["device_token"]
    assert heartbeat(backend, device_id, "wrong").status_code == 401
    assert heartbeat(backend, unique_id(), token).status_code == 404
    bad = heartbeat(backend, device_id, token, {"metrics": {"cpu_utilization_ratio": 5}, "bogus": 1})
    assert bad.status_code == 422
    locations = {tuple(e["loc"]) for e in bad.json()["detail"]}
    assert ("body", "metrics", "cpu_utilization_ratio") in locations
    assert ("body", "bogus") in locations


def test_register_validation_names_the_field(backend: BackendProcess) -> None:
    response = httpx.post(f"{backend.url}/api/v1/edge-devices/register",
                          json={"device_id": "bad id!", "device_name": "x", "hardware": HARDWARE})
    assert response.status_code == 422
    assert ["body", "device_id"] in [e["loc"] for e in response.json()["detail"]]


def test_admin_endpoints_need_the_admin_token(backend: BackendProcess) -> None:
    assert httpx.get(f"{backend.url}/api/v1/edge-devices").status_code == 401
    wrong = httpx.get(f"{backend.url}/api/v1/edge-devices", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    with backend.admin() as admin:
        assert admin.get("/api/v1/edge-devices").status_code == 200
        assert admin.get(f"/api/v1/edge-devices/{unique_id()}").status_code == 404


def test_device_goes_offline_after_three_missed_intervals(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id, heartbeat_interval=0.3).json()["device_token"]
    assert heartbeat(backend, device_id, token).status_code == 200
    assert backend.device(device_id)["status"] == "online"
    time.sleep(1.0)  # > 3 x 0.3 s
    assert backend.device(device_id)["status"] == "offline"
    with backend.admin() as admin:
        online_ids = [d["device_id"] for d in admin.get("/api/v1/edge-devices", params={"status": "online"}).json()]
    assert device_id not in online_ids


def test_backend_metrics_count_devices_and_heartbeats(backend: BackendProcess) -> None:
    def scrape() -> dict[str, float]:
        text = httpx.get(f"{backend.url}/metrics").text
        return {f"{s.name}{s.labels.get('status', '')}": s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = scrape()
    device_id = unique_id()
    token = register(backend, device_id).json()["device_token"]
    heartbeat(backend, device_id, token)
    after = scrape()
    beats = "jetfleet_backend_heartbeats_received_total"
    assert after[beats] == before[beats] + 1
    assert after["jetfleet_backend_devicesonline"] >= 1
    assert (after["jetfleet_backend_devicesonline"] + after["jetfleet_backend_devicesoffline"]
            == before["jetfleet_backend_devicesonline"] + before["jetfleet_backend_devicesoffline"] + 1)


def test_prometheus_discovers_reported_exporters_at_the_heartbeat_address(backend: BackendProcess) -> None:
    device_id = unique_id()
    token = register(backend, device_id, location="Lab 2").json()["device_token"]
    services = [{"role": "metrics", "url": "http://0.0.0.0:9101"}, {"role": "voice", "url": "http://[::]:8888"},
                {"role": "vision", "url": "http://10.9.8.7:7000"}]
    assert heartbeat(backend, device_id, token, {"services": services}).status_code == 200
    with backend.admin() as admin:
        groups = [g for g in admin.get("/api/v1/prometheus/targets").json() if g["labels"]["device_id"] == device_id]
        assert httpx.get(f"{backend.url}/api/v1/prometheus/targets").status_code == 401
    assert sorted((g["targets"], g["labels"]["jetfleet_role"]) for g in groups) == [
        (["127.0.0.1:8888"], "voice"), (["127.0.0.1:9101"], "metrics")]
    assert all(g["labels"]["__metrics_path__"] == "/metrics" and g["labels"]["location"] == "Lab 2" for g in groups)
    assert backend.device(device_id)["services"][2]["url"] == "http://10.9.8.7:7000"  # not a wildcard: kept

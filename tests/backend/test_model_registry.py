"""The model registry against a real control plane process, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from jetfleet.manifest import ManifestPayload
from tests.backend.registry_helpers import data_files, dense_model, golden_pair, heartbeat, push, register
from tests.conftest import unique_id
from tests.support.backend import BackendProcess
from tests.support.processes import jetfleet_cmd, subprocess_env


def cli(backend: BackendProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args, "--backend-url", backend.url, "--token", backend.admin_token),
                          capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120)


def test_push_records_signature_golden_and_monotonic_versions(backend: BackendProcess, tmp_path: Path) -> None:
    name = unique_id("model")
    first = push(backend, name, dense_model(tmp_path / "m1.onnx", seed=1), tag="prod",
                 golden=golden_pair(tmp_path / "g", seed=1))
    assert first.version == 1 and first.tags == ["prod"] and first.framework == "onnx"
    assert first.filename == "model.onnx"
    assert first.sha256 == hashlib.sha256((tmp_path / "m1.onnx").read_bytes()).hexdigest()
    assert [(s.name, s.datatype, s.shape) for s in first.inputs or ()] == [("input", "FP32", (-1, 4))]
    assert [(s.name, s.shape) for s in first.outputs or ()] == [("output", (-1, 3))]
    assert first.golden is not None and first.golden.input.filename == "input.npy"
    second = push(backend, name, dense_model(tmp_path / "m2.onnx", seed=2))
    assert second.version == 2 and second.tags == [] and second.golden is None
    sha = first.sha256
    assert (backend.workdir / "jetfleet-data/artifacts" / sha[:2] / sha).read_bytes() == \
        (tmp_path / "m1.onnx").read_bytes()

    listed = json.loads(cli(backend, "models", "ls", "--json").stdout)
    entry = next(m for m in listed if m["name"] == name)
    assert (entry["versions"], entry["latest"], entry["tags"], entry["devices"]) == (2, 2, {"prod": 1}, 0)


def test_cli_push_tag_deploy_and_status_json(backend: BackendProcess, tmp_path: Path) -> None:
    name, device = unique_id("model"), unique_id("dev")
    token, _ = register(backend, device)
    pushed = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx")), "--name", name, "--tag", "prod")
    assert pushed.returncode == 0, pushed.stderr
    assert f"{name} version 1 tagged prod: onnx" in pushed.stdout
    assert "upload m.onnx" in pushed.stdout  # the progress bar
    deployed = cli(backend, "models", "deploy", f"{name}:prod", "--device", device)
    assert deployed.returncode == 0, deployed.stderr
    assert f"{name}:prod (version 1) deployed to 1 device(s): {device}" in deployed.stdout
    cli(backend, "models", "push", str(dense_model(tmp_path / "m2.onnx", seed=3)), "--name", name)
    moved = cli(backend, "models", "tag", f"{name}:prod", "2")
    assert moved.returncode == 0 and "moved from version 1 to version 2; 1 device(s)" in moved.stdout

    status = cli(backend, "models", "status", name, "--json")
    assert json.loads(status.stdout) == {"model": name, "devices": [
        {"device_id": device, "version": None, "state": None, "reason": None, "endpoint": None}]}
    heartbeat(backend, device, token, models=[{"name": name, "serving_version": 2, "last_known_good": 1,
                                               "state": "committed", "endpoint": "http://127.0.0.1:9"}])
    status = cli(backend, "models", "status", name, "--json")
    assert json.loads(status.stdout)["devices"] == [
        {"device_id": device, "version": 2, "state": "committed", "reason": None, "endpoint": "http://127.0.0.1:9"}]
    table = cli(backend, "models", "status", name)
    assert device in table.stdout and "committed" in table.stdout


@pytest.mark.parametrize(("args", "field", "message"), [
    (["--framework", "pytorch"], "filename", "a pytorch model must be a .pt, .pth file"),
    (["--golden-input", "GOLDEN_IN"], "golden_output", "needs both --golden-input and --golden-output"),
])
def test_cli_refuses_a_bad_push_naming_the_field(backend: BackendProcess, tmp_path: Path, args: list[str],
                                                 field: str, message: str) -> None:
    name = unique_id("model")
    golden_in, _ = golden_pair(tmp_path)
    before = data_files(backend)
    args = [str(golden_in) if a == "GOLDEN_IN" else a for a in args]
    result = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx")), "--name", name, *args)
    assert result.returncode == 2
    assert f"{field}: " in result.stderr and message in result.stderr, result.stderr
    assert data_files(backend) == before  # nothing left behind
    assert cli(backend, "models", "status", name).returncode != 0  # no such model


def test_bad_uploads_get_a_4xx_naming_the_field_and_leave_nothing(backend: BackendProcess, tmp_path: Path) -> None:
    name = unique_id("model")
    before = data_files(backend)
    with backend.admin() as admin:
        empty = admin.post("/api/v1/models/uploads", content=b"")
        assert empty.status_code == 400 and empty.json()["detail"].startswith("body: the upload is empty")
        mismatch = admin.post("/api/v1/models/uploads", content=b"x" * 1000, headers={"X-Artifact-SHA256": "0" * 64})
        assert mismatch.status_code == 400 and mismatch.json()["detail"].startswith("X-Artifact-SHA256:")
        assert data_files(backend) == before

        garbage = admin.post("/api/v1/models/uploads", content=b"not an onnx model").json()["upload_id"]
        refused = admin.post(f"/api/v1/models/{name}/versions",
                             json={"artifact_upload": garbage, "filename": "model.onnx"})
        assert refused.status_code == 400 and refused.json()["detail"].startswith("artifact: not a loadable onnx")
        unknown = admin.post("/api/v1/models/uploads", content=b"abc").json()["upload_id"]
        refused = admin.post(f"/api/v1/models/{name}/versions",
                             json={"artifact_upload": unknown, "filename": "weights.bin"})
        assert refused.status_code == 400 and refused.json()["detail"].startswith("framework: cannot tell")
        assert data_files(backend) == before
        gone = admin.post(f"/api/v1/models/{name}/versions", json={"artifact_upload": unknown, "filename": "m.onnx"})
        assert gone.status_code == 404 and gone.json()["detail"].startswith("artifact_upload: no upload")

        model = admin.post("/api/v1/models/uploads", content=dense_model(tmp_path / "m.onnx").read_bytes())
        bad_golden = admin.post("/api/v1/models/uploads", content=b"\x93NUMPY garbage").json()["upload_id"]
        out = admin.post("/api/v1/models/uploads", content=(golden_pair(tmp_path)[1]).read_bytes()).json()
        refused = admin.post(f"/api/v1/models/{name}/versions", json={
            "artifact_upload": model.json()["upload_id"], "filename": "m.onnx", "golden_input_upload": bad_golden,
            "golden_output_upload": out["upload_id"], "golden_input_filename": "in.npy"})
        assert refused.status_code == 400 and refused.json()["detail"].startswith("golden_input:")
        assert data_files(backend) == before
        assert admin.get(f"/api/v1/models/{name}").status_code == 404


def test_tag_and_deploy_errors_name_what_is_unknown(backend: BackendProcess, tmp_path: Path) -> None:
    name = unique_id("model")
    push(backend, name, dense_model(tmp_path / "m.onnx"), tag="prod")
    with backend.admin() as admin:
        missing = admin.put(f"/api/v1/models/{name}/tags/prod", json={"version": 7})
        assert missing.status_code == 404
        assert missing.json()["detail"] == f"version: model '{name}' has no version 7 (latest is 1)"
        no_tag = admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "beta", "all": True})
        assert no_tag.status_code == 404 and no_tag.json()["detail"].startswith(f"tag: model '{name}' has no tag")
        no_device = admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "prod", "devices": ["ghost-1"]})
        assert no_device.status_code == 404 and "ghost-1" in no_device.json()["detail"]
        neither = admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "prod"})
        # the rule is in the schema (anyOf), so it is a validation error like any other
        assert neither.status_code == 422 and "devices: give exactly one of" in neither.text
        assert admin.get(f"/api/v1/models/{name}").json()["deployments"] == []
    assert cli(backend, "models", "tag", "no-colon", "1").stderr.startswith("error: key 'NAME:TAG'")


def test_heartbeat_answer_carries_a_signed_manifest_that_follows_the_tag(backend: BackendProcess,
                                                                          tmp_path: Path) -> None:
    name, device = unique_id("model"), unique_id("dev")
    token, public_b64 = register(backend, device)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    empty = _manifest(heartbeat(backend, device, token), public)
    assert empty.device_id == device and empty.models == ()

    v1 = push(backend, name, dense_model(tmp_path / "m1.onnx"), tag="prod", golden=golden_pair(tmp_path / "g"))
    with backend.admin() as admin:
        admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "prod", "devices": [device]}).raise_for_status()
    answer = heartbeat(backend, device, token)
    first = _manifest(answer, public)
    assert first.serial > empty.serial
    assert [(m.name, m.version, m.sha256, m.tag) for m in first.models] == [(name, 1, v1.sha256, "prod")]
    assert first.models[0].golden == v1.golden
    assert first.expires_at > datetime.now(timezone.utc)
    assert answer["ota"] == [{"model": name, "version": 1, "sha256": v1.sha256, "size_bytes": v1.size_bytes,
                              "current_version": None}]
    serving = {"models": [{"name": name, "serving_version": 1}]}
    assert heartbeat(backend, device, token, **serving)["ota"] == []
    assert _manifest(heartbeat(backend, device, token, **serving), public).serial == first.serial  # cached

    push(backend, name, dense_model(tmp_path / "m2.onnx", seed=5))
    with backend.admin() as admin:
        admin.put(f"/api/v1/models/{name}/tags/prod", json={"version": 2}).raise_for_status()
    moved = _manifest(heartbeat(backend, device, token, **serving), public)
    assert moved.serial > first.serial and moved.models[0].version == 2
    with backend.admin() as admin:
        admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "prod", "devices": [device]}).raise_for_status()
    redeployed = _manifest(heartbeat(backend, device, token), public)
    assert redeployed.serial > moved.serial and redeployed.models[0].generation == moved.models[0].generation + 1
    with backend.admin() as admin:
        assert admin.post(f"/api/v1/models/{name}/undeploy", json={"all": True}).json() == [device]
    assert _manifest(heartbeat(backend, device, token), public).models == ()


def test_restarted_control_plane_answers_from_its_bulk_loaded_state(backend: BackendProcess,
                                                                    tmp_path: Path) -> None:
    """After a restart the tokens and desired state come from one bulk load: same answers, same serials."""
    name, following, idle = unique_id("model"), unique_id("dev"), unique_id("dev")
    (token, public_b64), (idle_token, _) = register(backend, following), register(backend, idle)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    push(backend, name, dense_model(tmp_path / "m.onnx"), tag="prod")
    with backend.admin() as admin:
        deploy = {"tag": "prod", "devices": [following]}
        admin.post(f"/api/v1/models/{name}/deployments", json=deploy).raise_for_status()
    before = heartbeat(backend, following, token)
    backend.stop()
    backend.start()
    after = heartbeat(backend, following, token)
    assert _manifest(after, public).serial == _manifest(before, public).serial
    assert _manifest(after, public).models == _manifest(before, public).models
    assert after["ota"] == before["ota"] and after["ota"][0]["model"] == name
    assert _manifest(heartbeat(backend, idle, idle_token), public).models == ()
    response = httpx.post(f"{backend.url}/api/v1/edge-devices/{idle}/heartbeat", json={},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401  # another device's token still does not pass


def _manifest(answer: dict[str, object], public: Ed25519PublicKey) -> ManifestPayload:
    signed = answer["manifest"]
    assert isinstance(signed, dict)
    public.verify(base64.b64decode(signed["signature"]), signed["payload"].encode())  # raises when tampered
    return ManifestPayload.model_validate_json(signed["payload"])


def test_artifact_download_needs_a_token_and_supports_ranges(backend: BackendProcess, tmp_path: Path) -> None:
    name, device, other = unique_id("model"), unique_id("dev"), unique_id("dev")
    artifact = dense_model(tmp_path / "m.onnx", features=64, outputs=32)
    data = artifact.read_bytes()
    record = push(backend, name, artifact, tag="prod")
    token, _ = register(backend, device)
    other_token, _ = register(backend, other)
    with backend.admin() as admin:
        admin.post(f"/api/v1/models/{name}/deployments", json={"tag": "prod", "devices": [device]}).raise_for_status()
    url = f"{backend.url}/api/v1/edge-devices/{device}/artifacts/{record.sha256}"
    auth = {"Authorization": f"Bearer {token}"}

    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {other_token}"}).status_code == 401
    full = httpx.get(url, headers=auth)
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    part = httpx.get(url, headers={**auth, "Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = httpx.get(url, headers={**auth, "Range": f"bytes={len(data) - 10}-"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = httpx.get(url, headers={**auth, "Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    multi = httpx.get(url, headers={**auth, "Range": "bytes=0-9,20-29"})
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")

    not_deployed = f"{backend.url}/api/v1/edge-devices/{other}/artifacts/{record.sha256}"
    assert httpx.get(not_deployed, headers={"Authorization": f"Bearer {other_token}"}).status_code == 404
    with backend.admin() as admin:
        assert admin.get(f"/api/v1/models/artifacts/{record.sha256}").content == data
        assert admin.get(f"/api/v1/models/artifacts/{'0' * 64}").status_code == 404


def test_signing_key_is_created_private_and_printed(backend: BackendProcess) -> None:
    key = backend.workdir / "jetfleet-data/manifest-signing.key"
    assert key.stat().st_mode & 0o777 == 0o600
    printed = subprocess.run(jetfleet_cmd("backend", "public-key", "--signing-key", str(key)), capture_output=True,
                             text=True, env=subprocess_env(), timeout=60)
    _, registered = register(backend, unique_id("dev"))
    assert printed.stdout.strip() == registered

"""OTA under faults (process executor): kill -9 mid-download, corrupted artifacts, tampered/expired/replayed
manifests, no disk space, dying model servers. Real control plane, agents, model servers and Traefik."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from jetfleet.backend.signing import load_key
from jetfleet.manifest import ManifestPayload, sign_payload
from jetfleet.updatelock import hold
from tests.backend.registry_helpers import dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ota.nodes import Node, deploy, model_state, move_tag, wait_registered, wait_state
from tests.ota.proxy import BackendProxy, backend_proxy
from tests.ota.test_ota_process import infer
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import wait_until

MIB = 1 << 20


@pytest.fixture(scope="module")
def ota_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("ota-faults")) as backend:
        yield backend


@pytest.fixture
def proxy(ota_backend: BackendProcess) -> Iterator[BackendProxy]:
    with backend_proxy(ota_backend.url) as running:
        yield running


def node_via(proxy: BackendProxy, backend: BackendProcess, tmp_path: Path, **overrides: Any) -> Node:
    node = Node(tmp_path, proxy.url, unique_id("node"), **overrides).start()
    wait_registered(backend, node)
    return node


def versions_on_disk(node: Node, model: str) -> set[str]:
    directory = node.models_dir / model
    return {p.name for p in directory.iterdir() if p.name.isdigit()} if directory.is_dir() else set()


def partials(node: Node) -> list[Path]:
    downloads = node.models_dir / ".downloads"
    return sorted(downloads.glob("*.part")) if downloads.is_dir() else []


def test_kill9_mid_download_resumes_with_range(ota_backend: BackendProcess, proxy: BackendProxy,
                                                tmp_path: Path) -> None:
    model = unique_id("big")
    artifact = dense_model(tmp_path / "big.onnx", features=7240, outputs=7240)  # ~200 MB
    size = artifact.stat().st_size
    assert size > 200_000_000
    push(ota_backend, model, artifact, tag="prod")
    artifact.unlink()
    proxy.artifact_rate = 40 * MIB  # about 5 s for the whole file: time to kill the agent halfway
    node = node_via(proxy, ota_backend, tmp_path)
    try:
        deploy(ota_backend, model, "prod", node.name)
        wait_until(lambda: partials(node) and partials(node)[0].stat().st_size > 60 * MIB, 60, interval=0.05,
                   what="download halfway")
        node.kill9()
        on_disk = partials(node)[0].stat().st_size
        assert 0 < on_disk < size
        proxy.artifact_rate = None
        node.start()
        wait_state(ota_backend, model, node.name, version=1, state="committed", timeout=120)
    finally:
        node.stop()
    resumed = [r for r in proxy.artifacts if r.range]
    assert len(resumed) == 1, proxy.artifacts
    start = int(resumed[0].range.removeprefix("bytes=").rstrip("-"))  # type: ignore[union-attr]
    refetched = on_disk - start
    assert 0 <= refetched <= MIB, f"re-fetched {refetched} bytes"
    assert resumed[0].bytes_sent == size - start
    assert "resuming download" in node.log()
    assert not partials(node)


def test_corrupted_artifact_is_refused_and_nothing_installed(ota_backend: BackendProcess, proxy: BackendProxy,
                                                             tmp_path: Path) -> None:
    model = unique_id("dense")
    record = push(ota_backend, model, dense_model(tmp_path / "m.onnx", features=64, outputs=64), tag="prod")
    blob = ota_backend.workdir / "jetfleet-data/artifacts" / record.sha256[:2] / record.sha256
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # storage corruption: same size, other bytes
    blob.write_bytes(bytes(data))
    node = node_via(proxy, ota_backend, tmp_path)
    try:
        deploy(ota_backend, model, "prod", node.name)
        state = wait_state(ota_backend, model, node.name, state="failed")
        assert state["reason"] == "VERIFY_ERROR/SHA_MISMATCH" and state["version"] is None
        assert versions_on_disk(node, model) == set() and partials(node) == []
    finally:
        node.stop()


def test_tampered_expired_and_replayed_manifests_are_refused(ota_backend: BackendProcess, proxy: BackendProxy,
                                                             tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ota_backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
    node = node_via(proxy, ota_backend, tmp_path)
    try:
        proxy.rewrite_heartbeat = tamper
        deploy(ota_backend, model, "prod", node.name)
        state = wait_state(ota_backend, model, node.name, reason="VERIFY_ERROR/BAD_SIGNATURE")
        assert state["state"] == "failed" and state["version"] is None
        assert versions_on_disk(node, model) == set()

        key = load_key(ota_backend.workdir / "jetfleet-data/manifest-signing.key")
        proxy.rewrite_heartbeat = lambda answer: resign(answer, key, expires=timedelta(hours=-1), serial_bump=10)
        wait_state(ota_backend, model, node.name, reason="VERIFY_ERROR/EXPIRED")
        assert versions_on_disk(node, model) == set()

        proxy.rewrite_heartbeat = None  # the real, valid manifests flow again
        wait_state(ota_backend, model, node.name, version=1, state="committed")
        old_answer = proxy.heartbeats[-1]
        push(ota_backend, model, dense_model(tmp_path / "v2.onnx", seed=2))
        move_tag(ota_backend, model, "prod", 2)
        wait_state(ota_backend, model, node.name, version=2, state="committed")
        proxy.rewrite_heartbeat = lambda _answer: old_answer  # replay the valid manifest of version 1
        state = wait_state(ota_backend, model, node.name, reason="VERIFY_ERROR/ROLLBACK")
        assert state["version"] == 2  # still serving the newer version
    finally:
        node.stop()


def tamper(answer: dict[str, Any]) -> dict[str, Any]:
    manifest = answer.get("manifest")
    if manifest and '"version":1' in manifest["payload"]:
        manifest = {**manifest, "payload": manifest["payload"].replace('"version":1', '"version":2', 1)}
    return {**answer, "manifest": manifest}


def resign(answer: dict[str, Any], key: Any, *, expires: timedelta, serial_bump: int) -> dict[str, Any]:
    """The real signing key, a well-formed manifest: but expired."""
    payload = ManifestPayload.model_validate_json(answer["manifest"]["payload"])
    now = datetime.now(timezone.utc).replace(microsecond=0)
    forged = payload.model_copy(update={"serial": payload.serial + serial_bump, "issued_at": now + expires * 2,
                                        "expires_at": now + expires})
    text, signature = sign_payload(forged, key.private)
    return {**answer, "manifest": {"payload": text, "signature": signature, "key_id": key.key_id}}


def test_disk_shortfall_reports_disk_space_and_downloads_nothing(ota_backend: BackendProcess, proxy: BackendProxy,
                                                                 tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ota_backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    free = psutil.disk_usage(str(tmp_path)).free
    node = node_via(proxy, ota_backend, tmp_path, ota_disk_headroom_bytes=free * 2)
    try:
        deploy(ota_backend, model, "prod", node.name)
        state = wait_state(ota_backend, model, node.name, state="failed")
        assert state["reason"] == "DISK_SPACE"
        assert versions_on_disk(node, model) == set() and partials(node) == []
        assert not [r for r in proxy.artifacts if model in r.path]
    finally:
        node.stop()


def test_dead_model_server_and_restarted_agent_are_healed(ota_backend: BackendProcess, proxy: BackendProxy,
                                                          tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ota_backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    node = node_via(proxy, ota_backend, tmp_path)
    try:
        deploy(ota_backend, model, "prod", node.name)
        wait_state(ota_backend, model, node.name, version=1, state="committed")
        first = server_pid(node, model)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: server_pid(node, model) not in (None, first), 30, what="a new model server")
        wait_until(lambda: ready(node, model), 30, what="serving again after the crash")
        wait_until(lambda: record_state(node, model) == "committed", 30, what="committed again")

        downloads = len(proxy.artifacts)
        node.stop()
        assert server_pid(node, model) is None  # stopped with the agent
        node.start()
        wait_until(lambda: ready(node, model), 30, what="serving again after the restart")
        wait_until(lambda: record_state(node, model) == "committed", 30, what="committed after the restart")
        assert len(proxy.artifacts) == downloads  # served from disk, not downloaded again
    finally:
        node.stop()
    assert model_state(ota_backend, model, node.name) is not None


def record_state(node: Node, model: str) -> str | None:
    try:
        return json.loads((node.dir / "state/ota/models.json").read_text())[model]["state"]  # type: ignore[no-any-return]
    except (OSError, ValueError, KeyError):
        return None


def server_pid(node: Node, model: str) -> int | None:
    pids = server_pids(node, model)
    return pids[0] if pids else None


def ready(node: Node, model: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{node.endpoint}/v2/models/{model}/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_newer_version_supersedes_a_download_in_flight(ota_backend: BackendProcess, proxy: BackendProxy,
                                                         tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ota_backend, model, dense_model(tmp_path / "v1.onnx", features=2048, outputs=2048), tag="prod")  # 16 MB
    push(ota_backend, model, dense_model(tmp_path / "v2.onnx", features=4, outputs=3, seed=2))
    proxy.artifact_rate = 2 * MIB  # version 1 would take about 8 s
    node = node_via(proxy, ota_backend, tmp_path)
    try:
        deploy(ota_backend, model, "prod", node.name)
        wait_state(ota_backend, model, node.name, state="downloading")
        move_tag(ota_backend, model, "prod", 2)
        wait_state(ota_backend, model, node.name, version=2, state="committed", timeout=30)
        assert versions_on_disk(node, model) == {"2"}
        wait_until(lambda: partials(node) == [], 10, what="the abandoned download removed")
        assert "superseded" in node.log()
    finally:
        node.stop()


def kill9_during_a_swap(backend: BackendProcess, proxy: BackendProxy, tmp_path: Path, state: str,
                        make_v2: Callable[[str], None]) -> None:
    """Serve v1, move the tag to v2 (``make_v2(model)`` pushes it), kill -9 the agent once v2 is in ``state``:
    v1 keeps answering; restarted, the agent finishes the swap and leaves one model server; stopped, none."""
    model = unique_id("dense")
    push(backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
    node = node_via(proxy, backend, tmp_path)
    try:
        deploy(backend, model, "prod", node.name)
        wait_state(backend, model, node.name, version=1, state="committed")
        make_v2(model)
        move_tag(backend, model, "prod", 2)
        wait_until(lambda: record_state(node, model) == state, 120, interval=0.01, what=f"version 2 in {state}")
        node.kill9()
        # the agent is gone, its node router and version 1 are not: requests are still answered, by version 1
        assert infer(node.endpoint, model, np.ones((1, 4), dtype=np.float32))[0] == "1"
        node.start()
        wait_state(backend, model, node.name, version=2, state="committed", timeout=180)
        wait_until(lambda: len(server_pids(node, model)) == 1, 60, what="one model server left (the committed one)")
        assert versions_on_disk(node, model) >= {"2"} and ready(node, model)
    finally:
        node.stop()
    assert server_pids(node, model) == []  # nothing of the killed agent's candidate is left running


def test_kill9_in_the_health_check_keeps_the_old_version_and_finishes_the_swap(
        ota_backend: BackendProcess, proxy: BackendProxy, tmp_path: Path) -> None:
    # v2 warms up and answers its golden check slowly (a 4096 x 4096 product per request, about a second
    # each): its health check lasts long enough to kill the agent in the middle of it
    kill9_during_a_swap(ota_backend, proxy, tmp_path, "health_check", lambda model: push(
        ota_backend, model, dense_model(tmp_path / "v2.onnx", seed=2, slow_size=4096),
        golden=golden_pair(tmp_path / "golden", seed=2)))


def test_kill9_while_activating_keeps_the_old_version_and_finishes_the_swap(
        ota_backend: BackendProcess, proxy: BackendProxy, tmp_path: Path) -> None:
    # "activating" lasts while the candidate's server starts and loads the model (about a second); the kill
    # lands at its very start, around the fork of that server (a server forked but not yet recorded is found)
    kill9_during_a_swap(ota_backend, proxy, tmp_path, "activating", lambda model: push(
        ota_backend, model, dense_model(tmp_path / "v2.onnx", features=2048, outputs=2048, seed=2)))


def test_kill9_while_staged_under_the_update_lock_waits_for_the_lock_without_downloading_again(
        ota_backend: BackendProcess, proxy: BackendProxy, tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ota_backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
    push(ota_backend, model, dense_model(tmp_path / "v2.onnx", seed=2))
    node = node_via(proxy, ota_backend, tmp_path)
    one = np.ones((1, 4), dtype=np.float32)
    try:
        deploy(ota_backend, model, "prod", node.name)
        wait_state(ota_backend, model, node.name, version=1, state="committed")
        with hold(node.dir / "state" / "update.lock"):
            move_tag(ota_backend, model, "prod", 2)
            wait_state(ota_backend, model, node.name, state="deferred", reason="LOCKED")
            downloads = len(proxy.artifacts)
            node.kill9()
            node.start()
            wait_until(lambda: "connected to control plane" in node.log_of_start(2), 60,
                       what="the restarted agent connected")
            assert infer(node.endpoint, model, one)[0] == "1" and record_state(node, model) == "deferred"
        wait_state(ota_backend, model, node.name, version=2, state="committed", timeout=120)
        assert infer(node.endpoint, model, one)[0] == "2"
        assert len(proxy.artifacts) == downloads  # version 2 was switched to from disk, not fetched again
        restarted = node.log_of_start(2)
        # the restarted agent saw the lock held, and switched only once it was released
        assert restarted.index("update lock") < restarted.index("traffic switched to version 2")
    finally:
        node.stop()


def server_pids(node: Node, model: str) -> list[int]:
    return [int(process.pid) for process in psutil.process_iter(["cmdline"])
            if "serve-model" in (cmdline := process.info["cmdline"] or []) and model in cmdline
            and str(node.models_dir) in " ".join(cmdline)]

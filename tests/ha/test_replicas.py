"""Two control-plane replicas on one real PostgreSQL behind the real Traefik (round robin), real agents
(process executor, real model servers) heartbeating through it: a change made through one replica reaches
devices heartbeating through the other within a second, and a SIGKILLed replica costs no registration,
no heartbeat state and no rollout (the survivor takes the lead)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.registry_helpers import HARDWARE, dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ha.cluster import Cluster, cluster
from tests.ota.nodes import Node, deploy, move_tag, wait_registered, wait_state
from tests.support.backend import BackendProcess
from tests.support.postgres import PostgresServer, create_database
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
MAX_PROPAGATION_S = 1.0


@pytest.fixture
def ha(postgres: PostgresServer, tmp_path: Path) -> Iterator[Cluster]:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    with cluster(tmp_path / "cluster", url, extra_args=("--rollout-interval", "0.2")) as running:
        yield running


@pytest.fixture
def nodes(ha: Cluster, tmp_path: Path) -> Iterator[list[Node]]:
    fleet = [Node(tmp_path / "nodes", ha.url, unique_id(f"ha{i}")) for i in range(2)]
    try:
        for node in fleet:
            node.start()
        wait_registered(ha.replicas[0], *fleet)
        yield fleet
    finally:
        for node in fleet:
            node.stop()


def register(url: str, device_id: str) -> str:
    response = httpx.post(f"{url}/api/v1/edge-devices/register", timeout=10,
                          json={"device_id": device_id, "device_name": device_id, "hardware": HARDWARE})
    assert response.status_code == 201, response.text
    token: str = response.json()["device_token"]
    return token


def wanted(client: httpx.Client, device_id: str, token: str, model: str) -> int | None:
    """The version of ``model`` the heartbeat's answer asks the device to install (None: nothing)."""
    response = client.post(f"/api/v1/edge-devices/{device_id}/heartbeat", json={},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return next((item["version"] for item in response.json()["ota"] if item["model"] == model), None)


class HeartbeatLoad:
    """Simulated devices heartbeating through the gateway back to back (bounded in count and time)."""

    def __init__(self, url: str, devices: list[tuple[str, str]], max_beats: int = 20_000,
                 max_seconds: float = 120) -> None:
        self.url, self.devices = url, devices
        self.max_beats, self.max_seconds = max_beats, max_seconds
        self.answers: list[tuple[float, int]] = []  # (monotonic time, status; 0 = transport error)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set() and len(self.answers) < self.max_beats and time.monotonic() < deadline:
                device_id, token = self.devices[len(self.answers) % len(self.devices)]
                try:
                    status = client.post(f"/api/v1/edge-devices/{device_id}/heartbeat", json={},
                                         headers={"Authorization": f"Bearer {token}"}).status_code
                except httpx.TransportError:
                    status = 0
                self.answers.append((time.monotonic(), status))

    def failed(self, since: float = 0.0) -> list[tuple[float, int]]:
        return [(t, s) for t, s in self.answers if t >= since and s != 200]

    def __enter__(self) -> HeartbeatLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        alive = self._thread.is_alive()
        self._stop.set()
        self._thread.join(30)
        assert alive, "the heartbeat load stopped early (count or time bound): the test measured nothing"


def test_a_tag_moved_through_one_replica_reaches_devices_heartbeating_through_the_other(
        ha: Cluster, nodes: list[Node], tmp_path: Path) -> None:
    a, b = ha.replicas
    model = unique_id("dense")
    sim = unique_id("sim")
    token = register(ha.url, sim)
    push(a, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod", golden=golden_pair(tmp_path / "g1", seed=1))
    push(a, model, dense_model(tmp_path / "v2.onnx", seed=2), golden=golden_pair(tmp_path / "g2", seed=2))
    deploy(a, model, "prod", sim, *(n.name for n in nodes))
    for node in nodes:  # the agents heartbeat through Traefik, so through both replicas in turn
        wait_state(ha.replicas[0], model, node.name, version=1, state="committed")
    with httpx.Client(base_url=b.url, timeout=10) as on_b:
        assert wanted(on_b, sim, token, model) == 1  # B holds the device's desired state in its cache now
        received = ha.status(b)["invalidations_received"]
        move_tag(a, model, "prod", 2)
        moved = time.monotonic()
        deadline = moved + 10
        while wanted(on_b, sim, token, model) != 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        latency = time.monotonic() - moved
    print(f"\ntag moved through replica a -> served by replica b after {latency * 1000:.0f} ms")
    assert latency < MAX_PROPAGATION_S, f"replica b answered the old version for {latency:.2f} s"
    assert ha.status(b)["invalidations_received"] > received
    for node in nodes:
        wait_state(b, model, node.name, version=2, state="committed")


def test_a_sigkilled_replica_costs_no_registration_no_heartbeat_state_and_no_rollout(
        ha: Cluster, nodes: list[Node], tmp_path: Path) -> None:
    model = unique_id("dense")
    push(ha.replicas[0], model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod",
         golden=golden_pair(tmp_path / "g1", seed=1))
    push(ha.replicas[0], model, dense_model(tmp_path / "v2.onnx", seed=2), golden=golden_pair(tmp_path / "g2", seed=2))
    deploy(ha.replicas[0], model, "prod", *(n.name for n in nodes))
    for node in nodes:
        wait_state(ha.replicas[0], model, node.name, version=1, state="committed")
    leaders = ha.leaders()
    assert len(leaders) == 1, "exactly one replica leads"
    leader = leaders[0]
    survivor = next(r for r in ha.replicas if r is not leader)
    sims = [(device_id, register(ha.url, device_id)) for device_id in (unique_id("sim") for _ in range(10))]

    with HeartbeatLoad(ha.url, sims) as load:
        wait_until(lambda: len(load.answers) > 200, 30, what="heartbeat load running")
        with survivor.admin() as admin:  # an admin action through the standby; the leader's loop drives it
            response = admin.post("/api/v1/rollouts", json={"model": model, "tag": "prod", "version": 2,
                                                             "waves": "1,100%", "soak_seconds": 3})
            assert response.status_code == 201, response.text
            rollout_id = response.json()["id"]
        killed_at, killed_wall = time.monotonic(), datetime.now(timezone.utc)
        leader.kill()
        wait_until(lambda: survivor in ha.leaders(), 15, interval=0.1, what="the survivor leads")
        takeover = time.monotonic() - killed_at
        late = [(device_id, register(ha.url, device_id)) for device_id in (unique_id("late") for _ in range(5))]
        job = unique_id("job")
        with ha.admin() as admin:  # a job created through the gateway after the kill reaches its device's manifest
            response = admin.post("/api/v1/jobs", json={"name": job, "model": model, "tag": "prod",
                                                        "input_dir": "/data/in", "schedule": "on_demand",
                                                        "devices": [sims[0][0]]})
            assert response.status_code == 201, response.text
        assert job in _manifest_jobs(ha.url, *sims[0])
        done = _wait_rollout(survivor, rollout_id, "completed")
        for node in nodes:
            wait_state(survivor, model, node.name, version=2, state="committed", timeout=60)
        settled = time.monotonic()
        wait_until(lambda: len(load.failed(settled)) == 0 and load.answers[-1][0] > settled + 2, 30,
                   what="two seconds of heartbeats after the kill")
    lost = load.failed(killed_at)
    print(f"\nleader killed: survivor {survivor.url} led after {takeover:.2f} s; {len(lost)} of "
          f"{len([a for a in load.answers if a[0] >= killed_at])} heartbeats through the gateway failed after the kill"
          f" (statuses {sorted({s for _, s in lost})})")
    assert takeover < 5
    with survivor.admin() as admin:
        metrics = admin.get("/metrics").text
    assert f'jetfleet_control_plane_leader{{replica="{ha.status(survivor)["replica"]}"}} 1.0' in metrics
    assert len(lost) <= 3, f"heartbeats lost in the kill: {lost}"
    assert [w["state"] for w in done["waves"]] == ["succeeded", "succeeded"]
    with survivor.admin() as admin:
        for device_id, _ in late:  # registered through the gateway after the kill
            assert admin.get(f"/api/v1/edge-devices/{device_id}").status_code == 200
        for device_id in [d for d, _ in sims] + [n.name for n in nodes]:  # their state is current
            record = admin.get(f"/api/v1/edge-devices/{device_id}").json()
            assert record["status"] == "online" and _t(record["last_heartbeat"]) > killed_wall, record
    for node in nodes:
        assert "refused this device" not in node.log() and "no longer accepts" not in node.log()


def _manifest_jobs(url: str, device_id: str, token: str) -> list[str]:
    response = httpx.post(f"{url}/api/v1/edge-devices/{device_id}/heartbeat", json={}, timeout=10,
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    payload = json.loads(response.json()["manifest"]["payload"])
    return [entry["name"] for entry in payload["jobs"]]


def _wait_rollout(replica: BackendProcess, rollout_id: int, state: str, timeout: float = 90) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        with replica.admin() as admin:
            doc: dict[str, Any] = admin.get(f"/api/v1/rollouts/{rollout_id}").json()
        if doc["state"] != state and doc["state"] in ("halted", "completed", "aborted"):
            raise AssertionError(f"rollout {rollout_id} ended {doc['state']}: {doc['reason']}")
        return doc if doc["state"] == state else None

    return wait_until(reached, timeout, interval=0.3, what=f"rollout {rollout_id} {state}")  # type: ignore[no-any-return]


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_replica_with_another_data_dir_or_signing_key_refuses_to_start(postgres: PostgresServer,
                                                                          tmp_path: Path) -> None:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    shared = tmp_path / "shared"

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(jetfleet_cmd("backend", "serve", "--port", "1", "--database-url", url,
                                           "--admin-token", "test-admin-token", *args),
                              capture_output=True, text=True, timeout=60, env=subprocess_env(), cwd=tmp_path)

    first = BackendProcess(tmp_path / "a", url, ["--data-dir", str(shared)])
    first.workdir.mkdir()
    first.start()  # records its data dir and its (new) key
    try:
        wrong_dir = serve("--data-dir", str(tmp_path / "local"))
        assert wrong_dir.returncode == 2 and "is not the data dir the other replicas" in wrong_dir.stderr
        assert not (tmp_path / "local" / "manifest-signing.key").exists()
        other_key = tmp_path / "other.key"
        assert subprocess.run(jetfleet_cmd("backend", "keygen", str(other_key)), capture_output=True,
                              timeout=60, env=subprocess_env()).returncode == 0
        wrong_key = serve("--data-dir", str(shared), "--signing-key", str(other_key))
        assert wrong_key.returncode == 2 and "sign with key" in wrong_key.stderr, wrong_key.stderr
        missing_key = serve("--data-dir", str(shared), "--signing-key", str(tmp_path / "absent.key"))
        assert missing_key.returncode == 2 and "copy that key file here" in missing_key.stderr
        assert not (tmp_path / "absent.key").exists()
    finally:
        first.stop()


def test_replicas_started_with_different_settings_say_which_until_the_odd_one_is_gone(
        postgres: PostgresServer, tmp_path: Path) -> None:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    shared = ["--data-dir", str(tmp_path / "shared")]
    first = BackendProcess(tmp_path / "a", url, [*shared, "--replica-name", "a", "--heartbeat-interval", "5"])
    second = BackendProcess(tmp_path / "b", url, [*shared, "--replica-name", "b", "--heartbeat-interval", "10",
                                                  "--provisioning-key", "another-key"])
    third = BackendProcess(tmp_path / "c", url, [*shared, "--replica-name", "c", "--heartbeat-interval", "5"])
    for replica in (first, second, third):
        replica.workdir.mkdir()

    def mismatched(replica: BackendProcess) -> list[str]:
        with replica.admin() as client:
            return client.get("/api/v1/status", timeout=5).raise_for_status().json()["mismatched_settings"]

    try:
        first.start()
        assert mismatched(first) == []  # alone
        second.start()
        third.start()
        # the provisioning key is compared by digest: a and c have none, b has one
        assert mismatched(second) == ["heartbeat_interval", "provisioning_key"]
        assert mismatched(third) == ["heartbeat_interval", "provisioning_key"]  # b differs from c
        log = "".join(path.read_text() for path in second.workdir.glob("*.log"))
        assert "setting heartbeat_interval differs from the one of live replica(s) a" in log
        assert "another-key" not in log
        gauge = 'jetfleet_control_plane_mismatched_settings{replica="b"} 2.0'
        assert gauge in httpx.get(f"{second.url}/metrics", timeout=5).text
        second.stop()  # the odd one out leaves: a and c agree (a stale record of b does not count)
        wait_until(lambda: mismatched(third) == [], 30, what="no mismatch once b is gone")
    finally:
        for replica in (first, second, third):
            replica.stop()

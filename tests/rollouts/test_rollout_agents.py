"""Staged rollouts end to end: a real control plane, four real agents (process executor, real model servers,
real Traefik node routers), requests flowing through every swap."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jetfleet.updatelock import hold
from tests.backend.registry_helpers import dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ota.nodes import Node, deploy, model_state, wait_registered, wait_state
from tests.ota.test_ota_process import Load, wait_until_some
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until

SLOW_SIZE = 1536  # the slow version's extra N x N matrix product: about 55 ms on one x86 core
SLOW_GATE_MS = 25


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("rollout-agents"), extra_args=["--rollout-interval", "0.2"]) as b:
        yield b


@pytest.fixture(scope="module")
def nodes(backend: BackendProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    root = tmp_path_factory.mktemp("nodes")
    names = sorted(unique_id(f"r{i}") for i in range(4))
    fleet = [Node(root, backend.url, name, labels={"role": "audio" if i == 3 else "vision"},
                  ota_metrics_window_seconds=5.0) for i, name in enumerate(names)]
    try:
        for node in fleet:
            node.start()
        wait_registered(backend, *fleet)
        yield fleet
    finally:
        for node in fleet:
            node.stop()


def cli(backend: BackendProcess, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(jetfleet_cmd(*args, "--backend-url", backend.url, "--token", backend.admin_token),
                            capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def rollout(backend: BackendProcess, model: str, version: int, *args: str) -> int:
    out = cli(backend, "models", "tag", f"{model}:prod", str(version), *args).stdout
    return int(out.split(":")[0].removeprefix("rollout "))


def wait_rollout(backend: BackendProcess, rollout_id: int, state: str, timeout: float = 120) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        with backend.admin() as admin:
            doc: dict[str, Any] = admin.get(f"/api/v1/rollouts/{rollout_id}").json()
        if doc["state"] != state and doc["state"] in ("halted", "completed", "aborted"):
            raise AssertionError(f"rollout {rollout_id} ended {doc['state']}: {doc['reason']}")
        return doc if doc["state"] == state else None

    return wait_until(reached, timeout, interval=0.3, what=f"rollout {rollout_id} {state}")  # type: ignore[no-any-return]


def has_version(node: Node, model: str, version: int) -> bool:
    downloads = node.models_dir / ".downloads"
    partial = downloads.is_dir() and any(p.name.startswith(f"{model}-{version}-") for p in downloads.iterdir())
    return (node.models_dir / model / str(version)).exists() or bool(partial)


def push_version(backend: BackendProcess, tmp_path: Path, model: str, seed: int, *, golden_seed: int | None = None,
                 tag: str | None = None, **misbehaviour: Any) -> int:
    golden = golden_pair(tmp_path / f"g{seed}", seed=seed if golden_seed is None else golden_seed)
    artifact = dense_model(tmp_path / f"v{seed}.onnx", seed=seed, **misbehaviour)
    return push(backend, model, artifact, golden=golden, tag=tag).version


def test_staged_rollouts_under_load(backend: BackendProcess, nodes: list[Node], tmp_path: Path) -> None:
    model = unique_id("dense")
    first, last = nodes[0], nodes[-1]
    push_version(backend, tmp_path, model, 1, tag="prod")
    deploy(backend, model, "prod", *(n.name for n in nodes))
    for node in nodes:
        wait_state(backend, model, node.name, version=1, state="committed")
    with Load(first.endpoint, model) as load_first, Load(last.endpoint, model) as load_last:
        wait_until_some(load_first, 10)
        # v2 fails its golden check on the first device: halted, rolled back there, nobody else downloads it
        assert push_version(backend, tmp_path, model, 2, golden_seed=1) == 2
        bad = rollout(backend, model, 2, "--rollout", "1,100%", "--max-failures", "0")
        halted = wait_rollout(backend, bad, "halted")
        assert halted["devices"][0]["device_id"] == first.name
        assert halted["devices"][0]["reason"] == "ROLLED_BACK/HEALTH_ERROR/GOLDEN_MISMATCH"
        assert [d["state"] for d in halted["devices"][1:]] == ["pending"] * 3
        assert model_state(backend, model, first.name)["version"] == 1  # type: ignore[index]
        assert [has_version(n, model, 2) for n in nodes] == [True, False, False, False]
        cli(backend, "rollouts", "abort", str(bad))

        # a good v3 in 1,50%,100%: every wave commits before the next one starts
        push_version(backend, tmp_path, model, 3)
        good = rollout(backend, model, 3, "--rollout", "1,50%,100%", "--soak", "1s")
        done = wait_rollout(backend, good, "completed", timeout=180)
        waves = done["waves"]
        assert [len(w["devices"]) for w in waves] == [1, 1, 2] and {w["state"] for w in waves} == {"succeeded"}
        for before, after in itertools.pairwise(waves):
            assert _t(after["started_at"]) >= _t(before["committed_at"]), "two waves swapped at once"
        for node in nodes:
            wait_state(backend, model, node.name, version=3, state="committed")
        wait_until_some(load_last, len(load_last.versions) + 10)
    assert load_first.failures == [] and load_last.failures == []
    assert load_last.versions[-1] == "3" and load_first.versions[-1] == "3"
    assert "2" not in load_last.versions

    # a version that passes its golden check but is slow in the field (~55 ms of extra compute per request,
    # v3 answers in about 1 ms): the gate breaks during the soak and halts; abort sends the wave back to v3
    push_version(backend, tmp_path, model, 4, slow_size=SLOW_SIZE)
    with Load(first.endpoint, model) as load:
        wait_until_some(load, 10)
        gated = rollout(backend, model, 4, "--rollout", "50%,100%", "--soak", "10m", "--gate", f"p99_ms<{SLOW_GATE_MS}")
        halted = wait_rollout(backend, gated, "halted", timeout=120)
        broken = next(d for d in halted["devices"] if d["device_id"] == first.name)
        assert broken["state"] == "failed" and broken["reason"].startswith("GATE/p99_ms=")
        assert broken["gates"]["p99_ms"] >= SLOW_GATE_MS and "p99_ms=" in halted["reason"]
        started = halted["waves"][0]["devices"]
        assert started == [nodes[0].name, nodes[1].name]
        wait_state(backend, model, nodes[1].name, version=4, state="committed")
        cli(backend, "rollouts", "abort", str(gated))
        for node in nodes[:2]:
            wait_state(backend, model, node.name, version=3, state="committed")
        assert not has_version(nodes[2], model, 4)
        wait_until_some(load, len(load.versions) + 10)
    assert load.failures == [] and load.versions[-1] == "3"
    shown = cli(backend, "rollouts", "show", str(gated), "--json").stdout
    assert {d["state"] for d in json.loads(shown)["devices"][:2]} == {"reverted"}

    # a control-plane restart in the middle of a rollout: it continues where it was
    push_version(backend, tmp_path, model, 5)
    resumed = rollout(backend, model, 5, "--rollout", "1,100%", "--soak", "3s")
    wait_state(backend, model, first.name, version=5, state="committed")
    backend.stop()
    backend.start()
    done = wait_rollout(backend, resumed, "completed", timeout=180)
    assert _t(done["waves"][1]["started_at"]) >= _t(done["waves"][0]["committed_at"])
    for node in nodes:
        wait_state(backend, model, node.name, version=5, state="committed")


def test_update_lock_defers_a_swap_until_released(backend: BackendProcess, nodes: list[Node],
                                                 tmp_path: Path) -> None:
    model = unique_id("dense")
    locked = nodes[1]
    push_version(backend, tmp_path, model, 1, tag="prod")
    deploy(backend, model, "prod", locked.name, nodes[2].name)
    wait_state(backend, model, locked.name, version=1, state="committed")
    push_version(backend, tmp_path, model, 2)
    lock_file = Path(locked.config["state_dir"]) / "update.lock"
    with hold(lock_file):
        cli(backend, "models", "tag", f"{model}:prod", "2")  # a plain tag move: the lock applies to it too
        wait_state(backend, model, nodes[2].name, version=2, state="committed")
        state = wait_state(backend, model, locked.name, state="deferred", reason="LOCKED")
        assert state["version"] == 1 and (locked.models_dir / model / "2").is_dir()  # staged, not switched
        status = cli(backend, "models", "status", model).stdout
        assert "deferred" in status and "LOCKED" in status
        assert model_state(backend, model, locked.name)["version"] == 1  # type: ignore[index]
    wait_state(backend, model, locked.name, version=2, state="committed")


def test_a_version_failing_in_the_field_halts_its_rollout_at_the_first_device(
        backend: BackendProcess, nodes: list[Node], tmp_path: Path) -> None:
    model = unique_id("dense")
    canary, other = nodes[2], nodes[3]
    push_version(backend, tmp_path, model, 1, tag="prod")
    deploy(backend, model, "prod", canary.name, other.name)
    for node in (canary, other):
        wait_state(backend, model, node.name, version=1, state="committed")
    # v2 fails every request whose inputs are all above 0.5: its golden input (-1..1) and the model server's
    # warm-up (zeros) pass, so it commits; the field (the load client sends ones) gets only errors
    push_version(backend, tmp_path, model, 2, fail_above=0.5)
    with Load(canary.endpoint, model) as load:
        wait_until_some(load, 10)
        bad = rollout(backend, model, 2, "--rollout", "1,100%", "--soak", "10m", "--gate", "error_ratio<0.05")
        halted = wait_rollout(backend, bad, "halted", timeout=120)
        first = halted["devices"][0]
        assert first["device_id"] == canary.name and first["reason"].startswith("GATE/error_ratio=")
        assert first["gates"]["error_ratio"] >= 0.05 and halted["devices"][1]["state"] == "pending"
        assert load.failures, "the field requests to v2 failed: that is what broke the gate"
        cli(backend, "rollouts", "abort", str(bad))
        wait_state(backend, model, canary.name, version=1, state="committed")
        served, failed = len(load.versions), len(load.failures)
        wait_until(lambda: len(load.versions) >= served + 10, 30, what="v1 answering again after the abort")
    assert len(load.failures) == failed and load.versions[-1] == "1" and not has_version(other, model, 2)


def test_labels_from_the_agent_config_select_devices(backend: BackendProcess, nodes: list[Node],
                                                      tmp_path: Path) -> None:
    model = unique_id("dense")
    push_version(backend, tmp_path, model, 1, tag="prod")
    out = cli(backend, "models", "deploy", f"{model}:prod", "--selector", "role=audio").stdout
    assert out.strip().endswith(f"deployed to 1 device(s): {nodes[3].name}")
    wait_state(backend, model, nodes[3].name, version=1, state="committed")
    assert json.loads(cli(backend, "fleet", "show", nodes[0].name).stdout)["labels"] == {"role": "vision"}
    with backend.admin() as admin:
        report = admin.get(f"/api/v1/models/{model}/status").json()
    assert [d["device_id"] for d in report["devices"]] == [nodes[3].name]


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)

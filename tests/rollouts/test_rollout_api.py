"""Rollouts, labels and selectors on a real control plane, with devices simulated by their heartbeats."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jetfleet.errors import ConflictError
from tests.backend.registry_helpers import dense_model, heartbeat, push, register
from tests.conftest import unique_id
from tests.support.backend import BackendProcess, backend_server
from tests.support.postgres import create_database
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    url = None
    if request.param == "postgres":
        url = create_database(request.getfixturevalue("postgres"), f"jf_{uuid.uuid4().hex[:8]}")
    with backend_server(tmp_path_factory.mktemp(f"rollout-{request.param}"), url,
                        extra_args=["--rollout-interval", "0.1"]) as b:
        yield b


def cli(backend: BackendProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args, "--backend-url", backend.url, "--token", backend.admin_token),
                          capture_output=True, text=True, env=subprocess_env(COLUMNS="200"), timeout=120)


class Fleet:
    """Simulated devices: each 'serves' what it reports; ``beat`` answers with the version it is told to run."""

    def __init__(self, backend: BackendProcess, model: str, count: int) -> None:
        self.backend, self.model = backend, model
        self.ids = sorted(unique_id(f"sim{i}") for i in range(count))
        self.tokens = {d: register(backend, d)[0] for d in self.ids}
        self.serving: dict[str, dict[str, Any]] = {}

    def device_args(self) -> list[str]:
        return [arg for d in self.ids for arg in ("--device", d)]

    def report(self, device: str, **entry: Any) -> None:
        self.serving[device] = {"name": self.model, **entry}

    def wanted(self, device: str) -> int | None:
        """The version the control plane wants (None: what it reports serving is right)."""
        models = [self.serving[device]] if device in self.serving else []
        answer = heartbeat(self.backend, device, self.tokens[device], models=models)
        return next((item["version"] for item in answer["ota"] if item["model"] == self.model), None)

    def beat_all(self) -> dict[str, int | None]:
        return {d: self.wanted(d) for d in self.ids}


def show(backend: BackendProcess, rollout_id: int) -> dict[str, Any]:
    result = cli(backend, "rollouts", "show", str(rollout_id), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def wait_rollout(backend: BackendProcess, rollout_id: int, fleet: Fleet, what: str, check: Any,
                 timeout: float = 30) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        fleet.beat_all()
        with backend.admin() as admin:
            rollout = admin.get(f"/api/v1/rollouts/{rollout_id}").json()
        return rollout if check(rollout) else None

    return wait_until(done, timeout, interval=0.2, what=what)  # type: ignore[no-any-return]


def start(backend: BackendProcess, model: str, version: int, *args: str) -> int:
    result = cli(backend, "models", "tag", f"{model}:prod", str(version), *args)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split(":")[0].removeprefix("rollout "))


def fleet_on_v1(backend: BackendProcess, tmp_path: Path, devices: int, versions: int) -> tuple[str, Fleet]:
    """A new model with ``versions`` versions (prod -> 1) and simulated devices following prod, serving 1."""
    model = unique_id("m")
    for seed in range(1, versions + 1):
        push(backend, model, dense_model(tmp_path / f"v{seed}.onnx", seed=seed), tag="prod" if seed == 1 else None)
    fleet = Fleet(backend, model, devices)
    assert cli(backend, "models", "deploy", f"{model}:prod", *fleet.device_args()).returncode == 0
    for device in fleet.ids:
        fleet.report(device, serving_version=1, target_version=1, state="committed")
    return model, fleet


def test_waves_halt_abort_and_restart(backend: BackendProcess, tmp_path: Path) -> None:
    model, fleet = fleet_on_v1(backend, tmp_path, 4, versions=3)
    assert set(fleet.beat_all().values()) == {None}

    # version 2 fails on the first device: halted, nobody else is asked for it
    rollout_id = start(backend, model, 2, "--rollout", "1,100%", "--max-failures", "0")
    refused = cli(backend, "models", "tag", f"{model}:prod", "3")
    assert refused.returncode != 0 and f"rollout {rollout_id} of {model}:prod is running" in refused.stderr
    first, rest = fleet.ids[0], fleet.ids[1:]
    assert fleet.beat_all() == {first: 2, **dict.fromkeys(rest)}
    fleet.report(first, serving_version=1, target_version=2, state="rolled_back", reason="HEALTH_ERROR/GOLDEN_MISMATCH")
    halted = wait_rollout(backend, rollout_id, fleet, "halted", lambda r: r["state"] == "halted")
    assert halted["devices"][0] == {"device_id": first, "wave": 0, "state": "failed", "version": 1, "gates": {},
                                    "reason": "ROLLED_BACK/HEALTH_ERROR/GOLDEN_MISMATCH"}
    assert [w["state"] for w in halted["waves"]] == ["failed", "pending"] and first in halted["reason"]
    assert all(v is None for d, v in fleet.beat_all().items() if d != first)
    aborted = cli(backend, "rollouts", "abort", str(rollout_id))
    assert aborted.returncode == 0 and "aborted" in aborted.stdout
    assert set(fleet.beat_all().values()) == {None}  # version 1 everywhere, again

    # version 3 in 1,50%,100% with a soak and a gate; the control plane restarts in the middle
    rollout_id = start(backend, model, 3, "--rollout", "1,50%,100%", "--soak", "1s", "--gate", "p99_ms<50")
    for step, wave in enumerate([[fleet.ids[0]], [fleet.ids[1]], fleet.ids[2:]]):
        wanted = fleet.beat_all()
        assert {d for d, v in wanted.items() if v == 3} == set(wave), f"wave {step + 1}"
        for device in wave:
            fleet.report(device, serving_version=3, target_version=3, state="committed", p99_ms=4.0)
        if step == 1:
            backend.stop()
            backend.start()
        if step < 2:
            wait_rollout(backend, rollout_id, fleet, f"wave {step + 2} starts",
                         lambda r, s=step: r["waves"][s + 1]["state"] == "updating")
    done = wait_rollout(backend, rollout_id, fleet, "completed", lambda r: r["state"] == "completed")
    assert [w["state"] for w in done["waves"]] == ["succeeded"] * 3
    assert {d["state"] for d in done["devices"]} == {"committed"}
    assert all(d["gates"] == {"p99_ms": 4.0} for d in done["devices"])
    with backend.admin() as admin:
        assert admin.get(f"/api/v1/models/{model}").json()["tags"] == {"prod": 3}
    listed = json.loads(cli(backend, "rollouts", "ls", "--json").stdout)
    assert [(r["id"], r["state"]) for r in listed if r["model"] == model] == [(rollout_id - 1, "aborted"),
                                                                             (rollout_id, "completed")]


def test_a_broken_gate_halts_and_a_lock_defers(backend: BackendProcess, tmp_path: Path) -> None:
    model, fleet = fleet_on_v1(backend, tmp_path, 3, versions=2)
    rollout_id = start(backend, model, 2, "--rollout", "2,100%", "--soak", "30s", "--gate", "error_ratio<0.01")
    a, b = fleet.ids[:2]
    fleet.report(a, serving_version=1, target_version=2, state="deferred", reason="LOCKED", lock_held_seconds=3)
    assert show(backend, rollout_id)["waves"][0]["devices"] == [a, b]
    deferred = wait_rollout(backend, rollout_id, fleet, "deferred", lambda r: r["devices"][0]["state"] == "deferred")
    assert deferred["devices"][0]["reason"] == "LOCKED" and deferred["state"] == "running"
    fleet.report(a, serving_version=2, target_version=2, state="committed", error_ratio=0.0)
    fleet.report(b, serving_version=2, target_version=2, state="committed", error_ratio=0.25)
    halted = wait_rollout(backend, rollout_id, fleet, "halted", lambda r: r["state"] == "halted")
    assert halted["devices"][1]["reason"] == "GATE/error_ratio=0.25" and "error_ratio=0.25" in halted["reason"]
    table = cli(backend, "rollouts", "show", str(rollout_id))
    assert "halted" in table.stdout and "GATE/error_ratio=0.25" in table.stdout
    assert fleet.wanted(fleet.ids[2]) is None
    cli(backend, "rollouts", "abort", str(rollout_id))
    assert fleet.wanted(a) == 1 and fleet.wanted(b) == 1  # back to the version they served before


def test_an_offline_device_times_out_and_the_budget_lets_the_rollout_go_on(backend: BackendProcess,
                                                                          tmp_path: Path) -> None:
    model, fleet = fleet_on_v1(backend, tmp_path, 3, versions=2)
    refused = cli(backend, "models", "tag", f"{model}:prod", "2", "--rollout", "1,100%", "--device-timeout", "0s")
    assert refused.returncode == 2 and "--device-timeout" in refused.stderr
    rollout_id = start(backend, model, 2, "--rollout", "2,100%", "--max-failures", "1", "--device-timeout", "3s")
    first, offline, last = fleet.ids
    assert show(backend, rollout_id)["device_timeout_seconds"] == 3
    fleet.ids = [first, last]  # the second device went offline: it sends nothing from now on
    fleet.report(first, serving_version=2, target_version=2, state="committed")
    fleet.report(last, serving_version=2, target_version=2, state="committed")
    done = wait_rollout(backend, rollout_id, fleet, "completed", lambda r: r["state"] == "completed")
    assert [(d["device_id"], d["state"], d["reason"]) for d in done["devices"]] == [
        (first, "committed", None), (offline, "failed", "TIMEOUT/UPDATING"), (last, "committed", None)]
    assert done["reason"] == f"1 device(s) failed within --max-failures 1: {offline}"
    assert "device timeout 3s" in cli(backend, "rollouts", "show", str(rollout_id)).stdout


def test_labels_and_selectors(backend: BackendProcess, tmp_path: Path) -> None:
    model = unique_id("m")
    push(backend, model, dense_model(tmp_path / "v1.onnx"), tag="prod")
    fleet = Fleet(backend, model, 3)
    site = unique_id("site")
    cli(backend, "fleet", "label", fleet.ids[0], "role=vision", f"site={site}")
    cli(backend, "fleet", "label", fleet.ids[1], "role=audio", f"site={site}")
    labelled = cli(backend, "fleet", "label", fleet.ids[2], "role=vision", f"site={site}-b", "tmp=1")
    assert labelled.returncode == 0 and labelled.stdout.strip() == f"{fleet.ids[2]}: role=vision,site={site}-b,tmp=1"
    assert "tmp" not in cli(backend, "fleet", "label", fleet.ids[2], "--remove", "tmp").stdout
    deployed = cli(backend, "models", "deploy", f"{model}:prod", "--selector", f"role=vision,site in ({site}, x)")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.strip().endswith(f"deployed to 1 device(s): {fleet.ids[0]}")
    deployed = cli(backend, "models", "deploy", f"{model}:prod", "--selector",
                   f"site in ({site}, {site}-b),site notin ({site}-b)")
    assert f"2 device(s): {fleet.ids[0]}, {fleet.ids[1]}" in deployed.stdout
    assert fleet.wanted(fleet.ids[2]) is None and fleet.wanted(fleet.ids[1]) == 1
    undeployed = cli(backend, "models", "undeploy", model, "--selector", f"role!=vision,site={site}")
    assert f"undeployed from 1 device(s): {fleet.ids[1]}" in undeployed.stdout
    bad = cli(backend, "models", "deploy", f"{model}:prod", "--selector", "role=vision,site in (a")
    assert bad.returncode == 2 and "--selector" in bad.stderr and "unclosed '('" in bad.stderr
    none = cli(backend, "models", "deploy", f"{model}:prod", "--selector", "role=nothing")
    assert none.returncode == 2 and "matches no device" in none.stderr
    shown = json.loads(cli(backend, "fleet", "show", fleet.ids[0]).stdout)
    assert shown["labels"] == {"role": "vision", "site": site}
    assert "role=vision" in cli(backend, "fleet", "status").stdout


def test_a_rollout_limited_by_a_selector_pins_its_devices_and_leaves_the_tag(backend: BackendProcess,
                                                                             tmp_path: Path) -> None:
    model, fleet = fleet_on_v1(backend, tmp_path, 4, versions=3)
    lab = unique_id("lab")
    for device in fleet.ids[1:3]:
        cli(backend, "fleet", "label", device, f"site={lab}")
    plain = cli(backend, "models", "tag", f"{model}:prod", "2", "--selector", f"site={lab}")
    assert plain.returncode == 2 and "--selector" in plain.stderr and "--rollout" in plain.stderr
    nobody = cli(backend, "models", "tag", f"{model}:prod", "2", "--rollout", "1,100%", "--selector", "site=mars")
    assert nobody.returncode == 2 and "matches 'site=mars'" in nobody.stderr
    outside, lab_a, lab_b, other = fleet.ids

    # the lab first: only its two devices, one wave at a time; the rest never hear of version 2
    partial = start(backend, model, 2, "--rollout", "1,100%", "--selector", f"site={lab}")
    assert [w["devices"] for w in show(backend, partial)["waves"]] == [[lab_a], [lab_b]]
    assert f"only devices matching 'site={lab}'" in cli(backend, "rollouts", "show", str(partial)).stdout
    assert fleet.wanted(lab_a) == 2 and fleet.wanted(lab_b) is None
    assert fleet.wanted(outside) is None and fleet.wanted(other) is None
    for device in (lab_a, lab_b):
        fleet.report(device, serving_version=2, target_version=2, state="committed")
    wait_rollout(backend, partial, fleet, "completed", lambda r: r["state"] == "completed")
    tags = json.loads(cli(backend, "models", "ls", "--json").stdout)
    assert next(m for m in tags if m["name"] == model)["tags"]["prod"] == 1  # the tag did not move
    assert [fleet.wanted(d) for d in fleet.ids] == [None, None, None, None]  # the lab keeps 2, the rest keep 1
    fleet.report(lab_a, serving_version=1, target_version=1, state="committed")  # as if it had served 1
    assert fleet.wanted(lab_a) == 2  # pinned to 2 after the rollout

    # then everyone to version 3, aborted half way: each device goes back to what it served before (lab: 2)
    fleet.report(lab_a, serving_version=2, target_version=2, state="committed")
    whole = start(backend, model, 3, "--rollout", "50%,100%")
    with pytest.raises(ConflictError, match="rollout"):  # a push that moves the tag waits for the rollout too
        push(backend, model, dense_model(tmp_path / "v4.onnx", seed=4), tag="prod")
    assert fleet.wanted(outside) == 3 and fleet.wanted(lab_a) == 3 and fleet.wanted(lab_b) is None  # not back to 1
    for device in (outside, lab_a):
        fleet.report(device, serving_version=3, target_version=3, state="committed")
    assert cli(backend, "rollouts", "abort", str(whole)).returncode == 0
    assert [fleet.wanted(d) for d in fleet.ids] == [1, 2, None, None]
    fleet.report(outside, serving_version=1, target_version=1, state="committed")
    fleet.report(lab_a, serving_version=2, target_version=2, state="committed")

    # a plain tag move is for every follower: the lab's pins go
    assert cli(backend, "models", "tag", f"{model}:prod", "3").returncode == 0
    assert [fleet.wanted(d) for d in fleet.ids] == [3, 3, 3, 3]

"""Headless jobs as desired state: the CLI, validation, and the jobs in each device's signed manifest."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.backend.jobs_helpers import manifest
from tests.backend.registry_helpers import HARDWARE, dense_model, heartbeat, push, register
from tests.backend.test_model_registry import cli
from tests.conftest import unique_id
from tests.support.backend import BackendProcess


def _jobs(backend: BackendProcess, device: str, token: str, public: str, names: set[str]) -> dict[str, dict]:
    """The device's manifest serial and its jobs among ``names`` (other tests share this control plane)."""
    payload = manifest(heartbeat(backend, device, token), public)
    return {"serial": payload.serial,  # type: ignore[dict-item]
            **{j.name: j.model_dump() for j in payload.jobs if j.name in names}}


def test_jobs_reach_their_devices_in_the_signed_manifest(backend: BackendProcess, tmp_path: Path) -> None:
    model, one, two = unique_id("model"), unique_id("dev"), unique_id("dev")
    (token1, public), (token2, _) = register(backend, one), register(backend, two)
    push(backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    named, everywhere = unique_id("job"), unique_id("job")
    names = {named, everywhere}
    before = _jobs(backend, one, token1, public, names)

    created = cli(backend, "jobs", "create", named, "--model", f"{model}:prod", "--input-dir", "/data/in",
                  "--every", "15m", "--device", one)
    assert created.returncode == 0, created.stderr
    assert f"job {named}: {model}:prod over /data/in every 900s on 1 device(s): {one}" in created.stdout
    first = _jobs(backend, one, token1, public, names)
    assert first["serial"] > before["serial"]
    assert first[named] == {"name": named, "model": model, "tag": "prod", "input_dir": "/data/in",
                            "schedule": "every", "every_seconds": 900.0, "cron": None, "run_generation": 0}
    assert named not in _jobs(backend, two, token2, public, names)

    assert cli(backend, "jobs", "create", everywhere, "--model", f"{model}:prod", "--input-dir", "/d",
               "--cron", "*/5 * * * *", "--all").returncode == 0
    assert _jobs(backend, two, token2, public, names)[everywhere]["cron"] == "*/5 * * * *"
    assert cli(backend, "jobs", "run", named).stdout.strip() == f"job {named}: run requested on 1 device(s): {one}"
    ran = cli(backend, "jobs", "run", everywhere, "--device", two)
    assert ran.returncode == 0 and f"on 1 device(s): {two}" in ran.stdout
    on_one, on_two = _jobs(backend, one, token1, public, names), _jobs(backend, two, token2, public, names)
    assert on_one[named]["run_generation"] == 1 and on_one["serial"] > first["serial"]
    assert on_one[everywhere]["run_generation"] == 0 and on_two[everywhere]["run_generation"] == 1

    listed = {j["name"]: j for j in json.loads(cli(backend, "jobs", "ls", "--json").stdout)}
    assert listed[named]["devices"] == [one] and listed[named]["version"] == 1
    assert listed[everywhere]["target"] == "all" and {one, two} <= set(listed[everywhere]["devices"])
    assert json.loads(cli(backend, "jobs", "show", named).stdout)["schedule"] == "every"
    table = cli(backend, "jobs", "ls").stdout
    assert named in table and "cron '*/5 * * * *'" in table

    assert cli(backend, "jobs", "delete", everywhere).stdout.strip() == f"job {everywhere} deleted"
    assert everywhere not in _jobs(backend, two, token2, public, names)
    assert cli(backend, "jobs", "delete", named).returncode == 0
    assert _jobs(backend, one, token1, public, names).keys() == {"serial"}
    gone = cli(backend, "jobs", "show", named)
    assert gone.returncode == 2 and f"unknown job '{named}'" in gone.stderr


def test_job_survives_a_control_plane_restart_in_the_bulk_loaded_manifests(backend: BackendProcess,
                                                                         tmp_path: Path) -> None:
    model, device, job = unique_id("model"), unique_id("dev"), unique_id("job")
    token, public = register(backend, device)
    push(backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    assert cli(backend, "jobs", "create", job, "--model", f"{model}:prod", "--input-dir", "/in", "--on-demand",
               "--device", device).returncode == 0
    before = _jobs(backend, device, token, public, {job})
    backend.stop()
    backend.start()
    assert _jobs(backend, device, token, public, {job}) == before
    assert before[job]["schedule"] == "on_demand"
    assert cli(backend, "jobs", "delete", job).returncode == 0


def test_a_job_by_selector_follows_the_devices_labels(backend: BackendProcess, tmp_path: Path) -> None:
    model, lab, field, job = unique_id("model"), unique_id("dev"), unique_id("dev"), unique_id("job")
    site = unique_id("site")  # other tests share this control plane: a label only this test's devices carry
    (lab_token, public), (field_token, _) = register(backend, lab), register(backend, field)
    push(backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    assert cli(backend, "fleet", "label", lab, f"site={site}", "role=vision").returncode == 0
    created = cli(backend, "jobs", "create", job, "--model", f"{model}:prod", "--input-dir", "/in", "--on-demand",
                  "--selector", f"site={site},role in (vision, voice)", "--json")
    assert created.returncode == 0, created.stderr
    record = json.loads(created.stdout)
    assert (record["target"], record["selector"], record["devices"]) == \
        ("selector", f"site={site},role in (vision, voice)", [lab])
    assert job in _jobs(backend, lab, lab_token, public, {job})
    assert job not in _jobs(backend, field, field_token, public, {job})

    before = _jobs(backend, field, field_token, public, {job})["serial"]
    assert cli(backend, "fleet", "label", field, f"site={site}", "role=voice").returncode == 0  # labelled later
    now = _jobs(backend, field, field_token, public, {job})
    assert job in now and now["serial"] > before
    assert cli(backend, "fleet", "label", lab, "--remove", "role").returncode == 0
    assert job not in _jobs(backend, lab, lab_token, public, {job})
    assert json.loads(cli(backend, "jobs", "show", job).stdout)["devices"] == [field]
    ran = cli(backend, "jobs", "run", job)
    assert ran.returncode == 0 and f"on 1 device(s): {field}" in ran.stdout
    assert f"1 (site={site}" in cli(backend, "jobs", "ls").stdout

    # An agent restarted with new config labels registers again: its labels change, and so do its jobs.
    restarted = unique_id("dev")
    token, _ = register(backend, restarted)
    assert job not in _jobs(backend, restarted, token, public, {job})
    again = httpx.post(f"{backend.url}/api/v1/edge-devices/register", timeout=10,
                       headers={"Authorization": f"Bearer {token}"},
                       json={"device_id": restarted, "device_name": restarted, "hardware": HARDWARE,
                             "labels": {"site": site, "role": "vision"}})
    assert again.status_code == 200, again.text
    assert job in _jobs(backend, restarted, token, public, {job})
    assert cli(backend, "jobs", "delete", job).returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "MODEL:prod", "--cron", "61 * * * *", "--all"], "cron: '61 * * * *' is not a valid cron"),
    (["--model", "MODEL:prod", "--every", "soon", "--all"], "key '--every': 'soon' is not a duration"),
    (["--model", "MODEL:prod", "--every", "0s", "--all"], "key '--every': '0s' must be longer than zero"),
    (["--model", "MODEL:prod", "--every", "0.5", "--all"], "key '--every': every_seconds: Input should be greater"),
    (["--model", "MODEL:prod", "--every", "1m", "--on-demand", "--all"], "key '--every': give exactly one of"),
    (["--model", "MODEL:prod", "--on-demand"], "key '--device': give one of: --device ID (repeatable), --all, "
                                               "--selector SELECTOR"),
    (["--model", "MODEL:prod", "--on-demand", "--all", "--selector", "role=x"], "key '--device': give one of"),
    (["--model", "MODEL:prod", "--on-demand", "--selector", "role in (a"], "key '--selector'"),
    (["--model", "MODEL:prod", "--on-demand", "--device", "ghost-1"], "devices: unknown device(s) ghost-1"),
    (["--model", "nosuchmodel:prod", "--on-demand", "--all"], "model: unknown model 'nosuchmodel'"),
    (["--model", "MODEL:beta", "--on-demand", "--all"], "tag: model 'MODEL' has no tag 'beta' (tags: prod)"),
    (["--model", "MODEL", "--on-demand", "--all"], "key '--model': expected NAME:TAG"),
])
def test_create_refuses_a_bad_job_naming_the_field(backend: BackendProcess, tmp_path: Path, args: list[str],
                                                   message: str) -> None:
    model = unique_id("model")
    push(backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    job = unique_id("job")
    args = [a.replace("MODEL", model) for a in args]
    refused = cli(backend, "jobs", "create", job, "--input-dir", "/in", *args)
    assert refused.returncode == 2, refused.stdout
    assert message.replace("MODEL", model) in refused.stderr, refused.stderr
    assert job not in cli(backend, "jobs", "ls", "--json").stdout


def test_duplicate_names_and_runs_on_foreign_devices_are_refused(backend: BackendProcess, tmp_path: Path) -> None:
    model, device, other, job = unique_id("model"), unique_id("dev"), unique_id("dev"), unique_id("job")
    register(backend, device)
    register(backend, other)
    push(backend, model, dense_model(tmp_path / "m.onnx"), tag="prod")
    create = ["jobs", "create", job, "--model", f"{model}:prod", "--input-dir", "/in", "--on-demand",
              "--device", device]
    assert cli(backend, *create).returncode == 0
    again = cli(backend, *create)
    assert again.returncode == 2 and f"name: a job named '{job}' exists already" in again.stderr
    foreign = cli(backend, "jobs", "run", job, "--device", other)
    assert foreign.returncode == 2 and f"devices: job '{job}' does not run on {other}" in foreign.stderr
    assert cli(backend, "jobs", "delete", job).returncode == 0

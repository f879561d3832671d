"""Headless jobs end to end: a real control plane, real agents (process executor, node router), a real ONNX model.

Covers the device side of issue 11: on-demand runs from the CLI, bad files, a tag move, the control plane killed
during runs, ``kill -9`` of the agent before upload and between upload and acknowledgement, and a full outbox.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jetfleet.backend.job_schemas import CreateJob
from tests.backend.registry_helpers import dense_model, push
from tests.backend.test_model_registry import cli
from tests.conftest import unique_id
from tests.ota.nodes import Node, admin, deploy, move_tag, wait_registered, wait_state
from tests.ota.proxy import backend_proxy
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import free_port, wait_until

pytestmark = pytest.mark.slow
FEATURES, OUTPUTS = 4, 3


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("jobs-backend")) as control_plane:
        yield control_plane


def reference(seed: int, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    from jetfleet.bench.testmodels import dense_reference

    return dense_reference(FEATURES, OUTPUTS, seed, 1.0, x)  # type: ignore[no-any-return]


def start_node(tmp_path: Path, backend_url: str, **overrides: Any) -> Node:
    return Node(tmp_path, backend_url, unique_id("node"), metrics_port=free_port(), metrics_host="127.0.0.1",
                jobs_interval=0.3, outbox_retry_max_seconds=1.0, **overrides).start()


def serve_model(backend: BackendProcess, tmp_path: Path, node: Node) -> str:
    model = unique_id("dense")
    wait_registered(backend, node)
    push(backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
    deploy(backend, model, "prod", node.name)
    wait_state(backend, model, node.name, version=1, state="committed")
    return model


def create_job(backend: BackendProcess, name: str, model: str, folder: Path, node: Node, **schedule: Any) -> None:
    with admin(backend) as client:
        client.create_job(CreateJob(name=name, model=model, tag="prod", input_dir=str(folder),
                                    devices=[node.name], **schedule))


def results(backend: BackendProcess, job: str) -> list[dict[str, Any]]:
    with admin(backend) as client:
        return [r.model_dump(mode="json") for r in client.job_results(job)]


def wait_results(backend: BackendProcess, job: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = results(backend, job)
        return len(found) >= count

    try:
        wait_until(enough, timeout, interval=0.3, what=f"{count} results of {job}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; got {sorted(r['input'] for r in found)}") from None
    return found


def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{node.config['metrics_port']}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric(node: Node, name: str, **labels: str) -> float | None:
    try:
        return metrics(node).get((name, tuple(sorted(labels.items()))))
    except httpx.HTTPError:
        return None


def wait_metric(node: Node, name: str, check: Any, timeout: float = 60, **labels: str) -> float:
    seen: list[float | None] = [None]

    def ok() -> bool:
        seen[0] = metric(node, name, **labels)
        return seen[0] is not None and bool(check(seen[0]))

    try:
        wait_until(ok, timeout, interval=0.2, what=f"{name}{labels}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last value {seen[0]}") from None
    return float(seen[0])  # type: ignore[arg-type]


def write_rows(folder: Path, names: list[str], seed: int = 0) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in names:
        arrays[name] = rng.standard_normal((1, FEATURES)).astype(np.float32)
        tmp = folder / f".{name}.tmp.npy"
        np.save(tmp, arrays[name])
        tmp.rename(folder / name)  # atomically, as docs/jobs-and-drift.md asks
    return arrays


def exactly_once(found: list[dict[str, Any]], names: list[str]) -> None:
    inputs = [r["input"] for r in found]
    assert sorted(inputs) == sorted(names), sorted(inputs)
    assert len({r["key"] for r in found}) == len(found)


def test_on_demand_from_the_cli_bad_files_and_a_tag_move(backend: BackendProcess, tmp_path: Path) -> None:
    node = start_node(tmp_path, backend.url)
    try:
        model = serve_model(backend, tmp_path, node)
        folder = tmp_path / "inputs"
        x = np.array([[0.5, -1.0, 2.0, 0.25], [1, 2, 3, 4]], dtype=np.float32)
        folder.mkdir()
        np.save(folder / "a.npy", x)
        (folder / "b.csv").write_text("f0,f1,f2,f3\n1,0,0,1\n")
        (folder / "c.json").write_text(json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                                               "data": [0, 1, 0, 1]}]}))
        np.save(folder / "bad.npy", np.zeros((2, 3), dtype=np.float32))
        (folder / "junk.npz").write_bytes(b"not a zip file")
        job = unique_id("score")
        created = cli(backend, "jobs", "create", job, "--model", f"{model}:prod", "--input-dir", str(folder),
                      "--on-demand", "--device", node.name)
        assert created.returncode == 0, created.stderr
        ran = cli(backend, "jobs", "run", job)
        assert ran.returncode == 0 and f"run requested on 1 device(s): {node.name}" in ran.stdout, ran.stderr
        wait_results(backend, job, 5)
        listed = cli(backend, "jobs", "results", job, "--json")
        by_input = {r["input"]: r for r in map(json.loads, listed.stdout.splitlines())}
        assert set(by_input) == {"a.npy", "b.csv", "c.json", "bad.npy", "junk.npz"}
        assert by_input["a.npy"]["version"] == 1 and by_input["a.npy"]["error"] is None
        assert np.allclose(by_input["a.npy"]["outputs"]["output"], reference(1, x), rtol=1e-5)
        assert by_input["bad.npy"]["outputs"] is None
        assert by_input["bad.npy"]["error"] == ("bad.npy: input input: shape [2, 3], the model expects [-1, 4] "
                                                "(-1 means any size)")
        assert by_input["junk.npz"]["error"].startswith("junk.npz: ")
        assert wait_metric(node, "jetfleet_job_inputs_total", lambda v: v == 3, job=job, outcome="ok") == 3
        assert metric(node, "jetfleet_job_inputs_total", job=job, outcome="error") == 2

        # nothing new: a second run finds every file processed
        assert cli(backend, "jobs", "run", job).returncode == 0
        wait_metric(node, "jetfleet_job_runs_total", lambda v: v == 2, job=job, outcome="completed")
        assert len(results(backend, job)) == 5

        # the tag moves to version 2: the next run's result is answered by version 2
        push(backend, model, dense_model(tmp_path / "v2.onnx", seed=2))
        move_tag(backend, model, "prod", 2)
        wait_state(backend, model, node.name, version=2, state="committed")
        y = np.array([[2.0, 0.0, -1.0, 1.0]], dtype=np.float32)
        np.save(folder / "d.npy", y)
        assert cli(backend, "jobs", "run", job).returncode == 0
        newest = {r["input"]: r for r in wait_results(backend, job, 6)}["d.npy"]
        assert newest["version"] == 2 and np.allclose(newest["outputs"]["output"], reference(2, y), rtol=1e-5)
        wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
        assert metric(node, "jetfleet_outbox_dropped_total") == 0
    finally:
        node.stop()


def test_control_plane_killed_during_runs_and_agent_killed_before_upload(backend: BackendProcess,
                                                                        tmp_path: Path) -> None:
    node = start_node(tmp_path, backend.url)
    try:
        model = serve_model(backend, tmp_path, node)
        folder = tmp_path / "inputs"
        job = unique_id("every")
        names = [f"f{i:02d}.npy" for i in range(12)]
        write_rows(folder, names[:3])
        create_job(backend, job, model, folder, node, schedule="every", every_seconds=1.0)
        wait_results(backend, job, 3)

        backend.kill()  # kill -9 of the control plane: runs go on, results wait in the outbox
        write_rows(folder, names[3:7], seed=1)
        wait_metric(node, "jetfleet_job_inputs_total", lambda v: v == 7, job=job, outcome="ok")
        assert wait_metric(node, "jetfleet_outbox_pending", lambda v: v >= 4) >= 4
        wait_metric(node, "jetfleet_outbox_upload_failures_total", lambda v: v >= 1)
        node.kill9()  # kill -9 of the agent between write and upload
        node.start()
        write_rows(folder, names[7:], seed=2)
        wait_metric(node, "jetfleet_job_inputs_total", lambda v: v == 5, job=job, outcome="ok")  # only the new ones
        assert wait_metric(node, "jetfleet_outbox_oldest_age_seconds", lambda v: v > 0) > 0

        backend.start()  # same database, same port
        exactly_once(wait_results(backend, job, len(names)), names)
        wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
        exactly_once(results(backend, job), names)
    finally:
        node.stop()
        if backend.process is None:
            backend.start()


def test_agent_killed_between_upload_and_acknowledgement(backend: BackendProcess, tmp_path: Path) -> None:
    with backend_proxy(backend.url) as proxy:
        node = start_node(tmp_path, proxy.url)
        try:
            model = serve_model(backend, tmp_path, node)
            folder = tmp_path / "inputs"
            names = [f"g{i}.npy" for i in range(4)]
            write_rows(folder, names)
            job = unique_id("ondemand")
            create_job(backend, job, model, folder, node, schedule="on_demand")
            proxy.hold_results = True
            with admin(backend) as client:
                client.run_job(job, [])
            wait_until(lambda: 200 in proxy.results_forwarded, 60, what="a results batch stored by the server")
            stored = len(results(backend, job))
            assert stored >= 1  # the control plane has them; the agent has no acknowledgement
            node.kill9()
            proxy.hold_results = False
            node.start()
            exactly_once(wait_results(backend, job, len(names)), names)
            wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
            exactly_once(results(backend, job), names)
            assert proxy.results_forwarded.count(200) >= 2  # the held batch was sent again: counted as duplicates
        finally:
            node.stop()


def test_full_outbox_drops_oldest_results_keeps_sketches_and_counts(backend: BackendProcess, tmp_path: Path) -> None:
    with backend_proxy(backend.url) as proxy:
        node = start_node(tmp_path, proxy.url, outbox_max_bytes=8192)
        try:
            model = serve_model(backend, tmp_path, node)
            folder = tmp_path / "inputs"
            names = [f"h{i:02d}.npy" for i in range(20)]
            write_rows(folder, names)
            job = unique_id("full")
            proxy.results_status = 503  # the control plane refuses results for now
            create_job(backend, job, model, folder, node, schedule="on_demand")
            with admin(backend) as client:
                client.run_job(job, [])
            wait_metric(node, "jetfleet_job_runs_total", lambda v: v == 1, job=job, outcome="completed")
            dropped = metric(node, "jetfleet_outbox_dropped_total")
            assert dropped is not None and dropped > 0
            wait_until(lambda: any(b.get("outbox", {}).get("dropped_total") == dropped
                                   and b["outbox"]["pending"] > 0 and b["outbox"]["upload_failures_total"] > 0
                                   for b in proxy.heartbeat_requests), 30, what="the outbox state in a heartbeat")
            proxy.results_status = None
            wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
            received = results(backend, job)
            assert len(received) == len(names) - dropped and received, (len(received), dropped)
            kept = sorted(r["input"] for r in received)
            assert kept == names[len(names) - len(kept):]  # the oldest were dropped
            with sqlite3.connect(backend.database_url.removeprefix("sqlite:///")) as db:
                rows = db.execute("SELECT kind, count FROM drift_sketches WHERE device_id = ?", (node.name,)).fetchall()
            assert sorted(kind for kind, _ in rows) == ["input"] * FEATURES + ["output"] * OUTPUTS
            assert {count for kind, count in rows if kind == "input"} == {len(names)}  # every input is in a sketch
            assert metric(node, "jetfleet_outbox_dropped_total") == dropped
        finally:
            node.stop()


def test_a_mean_shift_in_one_feature_is_flagged_from_the_agents_sketches(tmp_path: Path) -> None:
    width = 2  # seconds per drift window, so that three windows pass in a few seconds
    # 30 recent windows: the three runs land in three windows however slowly this machine runs them
    with backend_server(tmp_path / "drift-backend",
                        extra_args=["--drift-window", f"{width}s", "--drift-windows", "30"]) as drift_backend:
        node = start_node(tmp_path, drift_backend.url)
        try:
            wait_registered(drift_backend, node)
            model = unique_id("dense")
            reference = tmp_path / "reference.npz"
            np.savez(reference, input=np.random.default_rng(0).normal(size=(5000, FEATURES)).astype(np.float32))
            pushed = cli(drift_backend, "models", "push", str(dense_model(tmp_path / "m.onnx", seed=1)), "--name",
                         model, "--tag", "prod", "--reference", str(reference))
            assert pushed.returncode == 0, pushed.stderr
            deploy(drift_backend, model, "prod", node.name)
            wait_state(drift_backend, model, node.name, version=1, state="committed")
            folder = tmp_path / "inputs"
            folder.mkdir()
            job = unique_id("drift")
            create_job(drift_backend, job, model, folder, node, schedule="on_demand")
            rng = np.random.default_rng(42)
            for window in range(3):
                rows = rng.normal(size=(300, FEATURES)).astype(np.float32)
                rows[:, 2] += 1.0  # one standard deviation, in feature 2 only
                np.save(folder / f"w{window}.npy", rows)
                assert cli(drift_backend, "jobs", "run", job).returncode == 0
                wait_results(drift_backend, job, window + 1)
                bucket = int(time.time() // width)  # the run's sketches end before its results arrive
                wait_until(lambda b=bucket: int(time.time() // width) > b, width + 1, interval=0.05,  # type: ignore[misc]
                           what="the next drift window")
            wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
            shown = cli(drift_backend, "drift", "status", model, "--json")
            assert shown.returncode == 0, shown.stderr
            report = json.loads(shown.stdout)
            assert report["model"] == model and report["version"] == 1 and report["drift"] is True, json.dumps(report)
            assert [f["index"] for f in report["features"] if f["drift"]] == [2], report["features"]
            assert all(f["input"] == "input" and f["n_current"] == 900 and f["n_reference"] == 5000
                       for f in report["features"])
        finally:
            node.stop()


def test_an_item_the_control_plane_refuses_is_quarantined_and_the_rest_arrive(backend: BackendProcess,
                                                                             tmp_path: Path) -> None:
    with backend_proxy(backend.url) as proxy:
        node = start_node(tmp_path, proxy.url)
        try:
            model = serve_model(backend, tmp_path, node)
            folder = tmp_path / "inputs"
            names = [f"q{i}.npy" for i in range(5)]
            write_rows(folder, names)
            refused = hashlib.sha256((folder / "q2.npy").read_bytes()).hexdigest()
            proxy.refuse_results_with = f'"input_sha256":"{refused}"'  # the control plane refuses q2's result only
            job = unique_id("refuse")
            create_job(backend, job, model, folder, node, schedule="on_demand")
            with admin(backend) as client:
                client.run_job(job, [])
            wait_metric(node, "jetfleet_outbox_quarantined_total", lambda v: v == 1)
            wait_metric(node, "jetfleet_outbox_pending", lambda v: v == 0)
            exactly_once(results(backend, job), [n for n in names if n != "q2.npy"])
            assert 422 not in proxy.results_forwarded  # refused by the proxy, never stored
        finally:
            node.stop()


def test_pause_policy_holds_inputs_back_until_uploads_make_room(backend: BackendProcess, tmp_path: Path) -> None:
    with backend_proxy(backend.url) as proxy:
        node = start_node(tmp_path, proxy.url, outbox_max_bytes=2048, outbox_full_policy="pause")
        try:
            model = serve_model(backend, tmp_path, node)
            folder = tmp_path / "inputs"
            names = [f"p{i:02d}.npy" for i in range(10)]
            write_rows(folder, names)
            proxy.results_status = 503
            job = unique_id("pause")
            create_job(backend, job, model, folder, node, schedule="on_demand")
            with admin(backend) as client:
                client.run_job(job, [])
            wait_metric(node, "jetfleet_job_waiting", lambda v: v == 1, job=job, reason="OUTBOX_FULL")
            processed = metric(node, "jetfleet_job_inputs_total", job=job, outcome="ok")
            assert processed is not None and 0 < processed < len(names)  # the rest wait in the folder
            proxy.results_status = None
            exactly_once(wait_results(backend, job, len(names)), names)
            assert metric(node, "jetfleet_outbox_dropped_total") == 0
            assert metric(node, "jetfleet_job_inputs_total", job=job, outcome="ok") == len(names)
        finally:
            node.stop()

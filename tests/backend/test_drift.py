"""Drift detection on a real control plane, from sketches a simulated device builds with datasketches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tests.backend.jobs_helpers import post_batch, run_id, sketches
from tests.backend.registry_helpers import dense_model, register
from tests.backend.test_model_registry import cli
from tests.conftest import unique_id
from tests.support.backend import BackendProcess

FEATURES = 6
HOUR = timedelta(hours=1)


def push_with_reference(backend: BackendProcess, tmp_path: Path, name: str, *, rows: int = 5000,
                        seed: int = 0) -> Path:
    reference = tmp_path / "reference.npz"
    np.savez(reference, input=np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32))
    pushed = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx", features=FEATURES)), "--name", name,
                 "--tag", "prod", "--reference", str(reference))
    assert pushed.returncode == 0, pushed.stderr
    return reference


def post_window(backend: BackendProcess, device: str, token: str, model: str, rows: np.ndarray,
                start: datetime, job: str = "score") -> dict[str, Any]:
    batch = {"sketches": sketches(device, job, run_id(), model, 1, rows, start=start)}
    response = post_batch(backend, device, token, batch)
    assert response.status_code == 200, response.text
    return batch


@dataclass
class DriftingModel:
    """A model pushed with a reference and a device that posted windows in which one feature drifts."""

    backend: BackendProcess
    name: str
    device: str
    token: str
    rng: np.random.Generator
    start: datetime  # of the first window; window i starts i hours later
    rows: int

    def post_clean(self, hours: range) -> None:
        for hour in hours:
            post_window(self.backend, self.device, self.token, self.name,
                        self.rng.normal(size=(self.rows, FEATURES)), self.start + hour * HOUR)


def drifting_model(backend: BackendProcess, tmp_path: Path, *, feature: int, shift: float, windows: int,
                   rows: int, seed: int) -> DriftingModel:
    """Push a model with a reference, register a device, post ``windows`` hourly windows with ``feature``
    shifted by ``shift`` (ending an hour before now)."""
    drifting = DriftingModel(backend, unique_id("model"), unique_id("dev"), "", np.random.default_rng(seed),
                             datetime.now(timezone.utc) - (windows + 9) * HOUR, rows)
    push_with_reference(backend, tmp_path, drifting.name)
    drifting.token, _ = register(backend, drifting.device)
    for hour in range(windows):
        window = drifting.rng.normal(size=(rows, FEATURES))
        window[:, feature] += shift
        post_window(backend, drifting.device, drifting.token, drifting.name, window, drifting.start + hour * HOUR)
    return drifting


def status(backend: BackendProcess, model: str, *args: str) -> dict[str, Any]:
    shown = cli(backend, "drift", "status", model, "--json", *args)
    assert shown.returncode == 0, shown.stderr
    report: dict[str, Any] = json.loads(shown.stdout)
    return report


def test_a_mean_shift_in_one_feature_flags_that_feature_and_no_other(backend: BackendProcess,
                                                                     tmp_path: Path) -> None:
    model = unique_id("model")
    push_with_reference(backend, tmp_path, model)
    devices = [(d, register(backend, d)[0]) for d in (unique_id("dev"), unique_id("dev"))]
    rng = np.random.default_rng(42)
    now = datetime.now(timezone.utc)
    first: dict[str, Any] = {}
    for hour in range(4):
        for device, token in devices:
            rows = rng.normal(size=(300, FEATURES))
            rows[:, 2] += 1.0  # one standard deviation
            posted = post_window(backend, device, token, model, rows, now - (3 - hour) * HOUR)
            first = first or posted
    assert post_batch(backend, devices[0][0], devices[0][1], first).json()["sketches_duplicate"] == FEATURES

    report = status(backend, model)
    assert report["model"] == model and report["version"] == 1 and report["drift"] is True
    assert report["reference"] == "pushed" and sorted(report["devices"]) == sorted(d for d, _ in devices)
    assert [(f["input"], f["index"]) for f in report["features"]] == [("input", i) for i in range(FEATURES)]
    assert [f["index"] for f in report["features"] if f["drift"]] == [2]
    shifted = report["features"][2]
    assert shifted["ks"] > shifted["ks_threshold"] and shifted["windows_drifting"] == shifted["windows"] == 4
    assert shifted["psi"] > shifted["psi_threshold"] and shifted["wasserstein"] > 0.5
    assert all(f["n_reference"] == 5000 and f["n_current"] == 2400 for f in report["features"])  # no double count
    assert all(f["windows_drifting"] == 0 for f in report["features"] if f["index"] != 2)
    one = status(backend, model, "--device", devices[1][0], "--version", "1")
    assert one["device_id"] == devices[1][0] and one["features"][2]["n_current"] == 1200 and one["drift"] is True
    table = cli(backend, "drift", "status", model).stdout
    assert "DRIFT" in table and "2 device(s)" in table


def test_windows_from_the_reference_distribution_raise_no_alarm(backend: BackendProcess, tmp_path: Path) -> None:
    model = unique_id("model")
    push_with_reference(backend, tmp_path, model, seed=7)
    device = unique_id("dev")
    token, _ = register(backend, device)
    rng = np.random.default_rng(2026)
    start = datetime.now(timezone.utc) - 24 * HOUR
    flagged = 0
    for window in range(24):  # each evaluation looks at the newest 6 windows: 24 verdicts over 6 features
        post_window(backend, device, token, model, rng.normal(size=(200, FEATURES)), start + window * HOUR)
        report = status(backend, model)
        assert report["drift"] is False, report
        flagged += sum(f["windows_drifting"] for f in report["features"])
    assert flagged <= 2  # single flagged windows may happen (alpha); three in six may not


def test_without_a_pushed_reference_the_first_rows_become_it(backend: BackendProcess, tmp_path: Path) -> None:
    model = unique_id("model")
    pushed = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx", features=FEATURES)), "--name",
                 model, "--tag", "prod")
    assert pushed.returncode == 0, pushed.stderr
    device = unique_id("dev")
    token, _ = register(backend, device)
    rng = np.random.default_rng(5)
    start = datetime.now(timezone.utc) - 10 * HOUR
    post_window(backend, device, token, model, rng.normal(size=(600, FEATURES)), start)
    collecting = status(backend, model)
    assert (collecting["reference"], collecting["reference_rows"], collecting["drift"]) == ("collecting", 600, False)
    post_window(backend, device, token, model, rng.normal(size=(600, FEATURES)), start + HOUR)
    for hour in range(2, 6):
        rows = rng.normal(size=(300, FEATURES))
        rows[:, 0] *= 3.0  # a change of scale, not of mean
        post_window(backend, device, token, model, rows, start + hour * HOUR)
    report = status(backend, model)
    assert report["reference"] == "first_rows" and report["reference_rows"] == 1200
    assert [f["index"] for f in report["features"] if f["drift"]] == [0]
    assert all(f["n_current"] == 1200 for f in report["features"])  # the reference's rows are not current


def test_a_reference_that_does_not_fit_the_model_is_refused(backend: BackendProcess, tmp_path: Path) -> None:
    reference = tmp_path / "wrong.npz"
    np.savez(reference, input=np.zeros((10, FEATURES + 1), dtype=np.float32))
    model = unique_id("model")
    refused = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx", features=FEATURES)), "--name",
                  model, "--reference", str(reference))
    assert refused.returncode == 2
    assert f"reference: array 'input' has {FEATURES + 1} features per row, the model's input has {FEATURES}" \
        in refused.stderr
    np.savez(reference, other=np.zeros((10, FEATURES), dtype=np.float32))
    refused = cli(backend, "models", "push", str(dense_model(tmp_path / "m.onnx", features=FEATURES)), "--name",
                  model, "--reference", str(reference))
    assert refused.returncode == 2 and "reference: golden input names other" in refused.stderr
    assert cli(backend, "drift", "status", model).returncode == 2  # no such model: nothing was stored

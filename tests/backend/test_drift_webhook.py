"""The retrain webhook, the drift metrics and the results retention, on a control plane of their own."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.jobs_helpers import post_batch, result, run_id
from tests.backend.registry_helpers import register
from tests.backend.test_drift import FEATURES, drifting_model
from tests.conftest import unique_id
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import free_port, wait_until

SECRET = "retrain-secret"


class Receiver:
    """A real HTTP endpoint that records every POST and answers ``status`` (503 while ``failing``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.failing = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = 503 if receiver.failing else 200
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/retrain"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, code in self.requests if code == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    try:
        yield endpoint
    finally:
        endpoint.close()


def scrape(backend: BackendProcess) -> dict[str, float]:
    text = httpx.get(f"{backend.url}/metrics", timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def settled(backend: BackendProcess) -> bool:
    """Two evaluation rounds done since the start and nothing left to deliver."""
    metrics = scrape(backend)
    return metrics.get("jetfleet_drift_evaluation_rounds_total", 0) >= 2 and \
        metrics.get("jetfleet_drift_webhook_pending") == 0


def test_one_signed_report_per_state_change_across_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    args = ["--drift-interval", "0.3s", "--drift-webhook", receiver.url, "--webhook-secret", SECRET]
    with backend_server(tmp_path / "cp", extra_args=args) as backend:
        receiver.failing = True  # the retrain service is down when the drift starts
        drifting = drifting_model(backend, tmp_path, feature=4, shift=-0.8, windows=3, rows=400, seed=11)
        model, device = drifting.name, drifting.device
        wait_until(lambda: len(receiver.requests) >= 2, 30, what="retried webhook deliveries")
        backend.stop()  # restarted while the report is still undelivered
        receiver.failing = False
        backend.start()
        wait_until(lambda: receiver.delivered() and settled(backend), 30, what="the drift report")
        metrics = scrape(backend)
        assert metrics[f'jetfleet_drift_detected{{model="{model}",version="1"}}'] == 1.0
        ks = f'jetfleet_drift_score{{index="4",input="input",model="{model}",statistic="ks",version="1"}}'
        assert metrics[ks] > metrics[ks.replace("drift_score", "drift_threshold")]

        drifting.post_clean(range(3, 9))  # six clean windows: the recent windows no longer drift
        wait_until(lambda: len(receiver.delivered()) == 2 and settled(backend), 30, what="the recovery report")
        assert scrape(backend)[f'jetfleet_drift_detected{{model="{model}",version="1"}}'] == 0.0

    ok = [(headers, body) for headers, body, code in receiver.requests if code == 200]
    assert len(ok) == 2 and len(receiver.requests) >= 4  # the failures were retried, the successes not repeated
    for headers, body in ok:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-jetfleet-signature"] == f"sha256={expected}"
    drift, recovered = (json.loads(body) for _, body in ok)
    assert (drift["event"], drift["model"], drift["version"], drift["drift"]) == ("drift", model, 1, True)
    assert [(f["input"], f["index"]) for f in drift["features"]] == [("input", 4)]
    assert len(drift["statistics"]) == FEATURES and drift["devices"] == [device]
    assert drift["window"]["start"] < drift["window"]["end"] and drift["window"]["seconds"] == 3600
    assert (recovered["event"], recovered["drift"], recovered["features"]) == ("recovered", False, [])
    assert recovered["delivery_id"] > drift["delivery_id"]


def test_raw_results_older_than_the_retention_are_removed(tmp_path: Path) -> None:
    with backend_server(tmp_path / "cp", extra_args=["--results-retention", "4s", "--drift-interval", "0.5s"]) \
            as backend:
        device, job = unique_id("dev"), unique_id("job")
        token, _ = register(backend, device)
        run = run_id()
        batch = {"results": [result(device, job, run, f"{i}.npy") for i in range(5)]}
        assert post_batch(backend, device, token, batch).json()["results_accepted"] == 5

        def stored() -> int:
            with backend.admin() as admin:
                response = admin.get(f"/api/v1/jobs/{job}/results")
            return len(response.json()) if response.status_code == 200 else 0

        assert stored() == 5
        wait_until(lambda: stored() == 0, 30, what="the retention to remove the results")
        assert post_batch(backend, device, token, {"results": [result(device, job, run, "new.npy")]}).json()[
            "results_accepted"] == 1
        assert stored() == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--results-retention", "soon"], "key '--results-retention': 'soon' is not a duration"),
    (["--drift-min-windows", "9"], "key 'drift_min_windows': must be between 1 and drift_windows (6)"),
    (["--drift-alpha", "1.5"], "key 'drift_alpha': must be between 0 and 1"),
    (["--drift-webhook", "ftp://x"], "key 'drift_webhook': 'ftp://x' is not an http(s) URL"),
])
def test_serve_refuses_bad_drift_settings_naming_the_key(tmp_path: Path, args: list[str], message: str) -> None:
    import subprocess

    from tests.support.processes import jetfleet_cmd, subprocess_env

    done = subprocess.run(jetfleet_cmd("backend", "serve", "--admin-token", "long-enough-token", "--database-url",
                                       f"sqlite:///{tmp_path / 'b.db'}", "--port", str(free_port()), *args),
                          capture_output=True, text=True, timeout=60, env=subprocess_env(), cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr

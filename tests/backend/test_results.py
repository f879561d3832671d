"""Results and sketches posted over HTTP as a device posts them: each key stored once, bad batches refused."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np
import pytest

from jetfleet.jobs import MAX_BATCH_ITEMS
from tests.backend.jobs_helpers import kll_b64, post_batch, result, run_id, sketches
from tests.backend.registry_helpers import heartbeat, register
from tests.backend.test_model_registry import cli
from tests.conftest import unique_id
from tests.support.backend import BackendProcess


def _batch(device: str, job: str, count: int, run: str | None = None) -> dict[str, Any]:
    run = run or run_id()
    rows = np.random.default_rng(1).normal(size=(50, 3))
    return {"results": [result(device, job, run, f"in-{i:03d}.npy") for i in range(count)],
            "sketches": sketches(device, job, run, "dense", 1, rows)}


def _stored(backend: BackendProcess, job: str, *device: str) -> list[dict[str, Any]]:
    args = ["--device", device[0]] if device else []
    listed = cli(backend, "jobs", "results", job, "--json", *args)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_a_batch_delivered_twice_is_stored_once(backend: BackendProcess) -> None:
    device, job = unique_id("dev"), unique_id("job")
    token, _ = register(backend, device)
    batch = _batch(device, job, 100)
    first = post_batch(backend, device, token, batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"results_accepted": 100, "results_duplicate": 0, "sketches_accepted": 3,
                            "sketches_duplicate": 0}
    again = post_batch(backend, device, token, batch, compress=False)  # a redelivery, uncompressed this time
    assert again.json() == {"results_accepted": 0, "results_duplicate": 100, "sketches_accepted": 0,
                            "sketches_duplicate": 3}
    stored = _stored(backend, job)
    assert len(stored) == 100 and len({r["input"] for r in stored}) == 100
    sent = batch["results"][7]
    row = next(r for r in stored if r["input"] == sent["input"])
    assert {k: row[k] for k in ("device_id", "job", "run_id", "model", "version", "outputs", "error")} == {
        "device_id": device, "job": job, "run_id": sent["run_id"], "model": "dense", "version": 1,
        "outputs": {"output": [[0.5, 0.25, 0.25]]}, "error": None}
    assert row["created_at"].startswith(sent["created_at"][:19])


def test_partly_known_batches_keep_the_new_items_after_a_restart(backend: BackendProcess) -> None:
    """An agent killed before the ack redelivers a batch mixed with new items, to a restarted control plane."""
    device, other, job = unique_id("dev"), unique_id("dev"), unique_id("job")
    (token, _), (other_token, _) = register(backend, device), register(backend, other)
    run = run_id()
    batch = _batch(device, job, 30, run)
    assert post_batch(backend, device, token, batch).json()["results_accepted"] == 30
    backend.stop()
    backend.start()
    mixed = {"results": batch["results"][10:] + [result(device, job, run, f"late-{i}.npy") for i in range(5)]}
    assert post_batch(backend, device, token, mixed).json() == {
        "results_accepted": 5, "results_duplicate": 20, "sketches_accepted": 0, "sketches_duplicate": 0}
    assert post_batch(backend, other, other_token, _batch(other, job, 4)).json()["results_accepted"] == 4
    assert len(_stored(backend, job)) == 39
    mine = _stored(backend, job, device)
    assert len(mine) == 35 and {r["device_id"] for r in mine} == {device}
    table = cli(backend, "jobs", "results", job, "--device", other)
    assert f"{job}: 4 result(s)" in table.stdout


def _bad(device: str, job: str) -> list[tuple[str, dict[str, Any], str]]:
    good = _batch(device, job, 1)
    r = good["results"][0]
    s = good["sketches"][0]
    return [
        ("sha", {"results": [r, {**r, "key": r["key"] + "x", "input_sha256": "abc"}]}, "body.results.1.input_sha256"),
        ("foreign key", {"results": [{**r, "key": "someone-else." + r["key"]}]}, "body.results.0.key"),
        ("sketch b64", {"sketches": [{**s, "kll_b64": "%%%"}]}, "body.sketches.0.kll_b64"),
        ("not a sketch", {"sketches": [{**s, "kll_b64": "AAAA"}]}, "body.sketches.0.kll_b64"),
        ("count", {"sketches": [{**s, "count": 7, "kll_b64": kll_b64([1.0, 2.0])}]}, "body.sketches.0.kll_b64"),
        ("unknown field", {"results": [{**r, "surprise": 1}]}, "body.results.0.surprise"),
        ("too many", {"results": [result(device, job, "r", f"{i}.npy") for i in range(MAX_BATCH_ITEMS + 1)]},
         "body.results"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_a_bad_batch_is_refused_whole_naming_the_field(backend: BackendProcess, case: int) -> None:
    device, job = unique_id("dev"), unique_id("job")
    token, _ = register(backend, device)
    what, batch, field = _bad(device, job)[case]
    refused = post_batch(backend, device, token, batch)
    assert refused.status_code == 422, what
    assert field in {".".join(map(str, e["loc"])) for e in refused.json()["detail"]}, refused.text
    assert cli(backend, "jobs", "results", job, "--json").returncode == 2  # nothing stored: no such job


def test_undecodable_oversized_or_unauthenticated_uploads(backend: BackendProcess) -> None:
    device, job = unique_id("dev"), unique_id("job")
    token, _ = register(backend, device)
    url_batch = _batch(device, job, 2)
    headers_gzip = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
    import httpx

    url = f"{backend.url}/api/v1/edge-devices/{device}/results"
    truncated = httpx.post(url, content=gzip.compress(json.dumps(url_batch).encode())[:-20], headers=headers_gzip)
    assert truncated.status_code == 400 and truncated.json()["detail"].startswith("body:")
    brotli = httpx.post(url, content=b"{}", headers={**headers_gzip, "Content-Encoding": "br"})
    assert brotli.status_code == 400 and brotli.json()["detail"].startswith("Content-Encoding:")
    bomb = gzip.compress(b" " * (65 << 20))  # 65 MiB of blanks, a few KiB compressed
    assert httpx.post(url, content=bomb, headers=headers_gzip).status_code == 413
    assert httpx.post(url, content=b"x" * (17 << 20), headers={"Authorization": f"Bearer {token}"},
                      timeout=30).status_code == 413
    assert post_batch(backend, device, "wrong-token", url_batch).status_code == 401
    assert post_batch(backend, "ghost-1", token, url_batch).status_code == 404
    assert post_batch(backend, device, token, {}, raw=b"{not json").status_code == 422
    assert cli(backend, "jobs", "results", job).returncode == 2
    assert post_batch(backend, device, token, url_batch).json()["results_accepted"] == 2  # the device still can


def test_fleet_status_shows_a_device_whose_outbox_backlog_grows(backend: BackendProcess) -> None:
    stuck, fine = unique_id("dev"), unique_id("dev")
    (stuck_token, _), (fine_token, _) = register(backend, stuck), register(backend, fine)
    heartbeat(backend, stuck, stuck_token, outbox={"pending": 340, "oldest_age_seconds": 1800.0,
                                                   "dropped_total": 12, "upload_failures_total": 40})
    heartbeat(backend, fine, fine_token, outbox={"pending": 2, "oldest_age_seconds": 3.0})
    listed = {d["device_id"]: d for d in json.loads(cli(backend, "fleet", "status", "--json").stdout)}
    assert listed[stuck]["outbox"] == {"pending": 340, "oldest_age_seconds": 1800.0, "dropped_total": 12,
                                       "upload_failures_total": 40}
    assert listed[fine]["outbox"]["pending"] == 2
    rows = {line.split()[1]: line for line in cli(backend, "fleet", "status").stdout.splitlines()
            if stuck in line or fine in line}
    assert "340 backlog, oldest 30m" in rows[stuck] and "12 dropped" in rows[stuck]
    assert "backlog" not in rows[fine]

"""The durable outbox: one transaction per result, sketch windows per run, the size policy, ack and quarantine."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from datasketches import kll_floats_sketch

from jetfleet.agent.jobs.outbox import Outbox, OutboxSettings, RunVersion, batch_body
from jetfleet.agent.jobs.sketches import partials
from jetfleet.jobs import JobResult, ResultsBatch


def result(index: int, run: str = "r1", payload: int = 10) -> JobResult:
    sha = f"{index:064x}"
    return JobResult(key=f"dev.job.{run}.{sha[-16:]}", job="job", run_id=run, input=f"f{index}.npy",
                     input_sha256=sha, model="dense", version=1, outputs={"output": [[0.5] * payload]},
                     created_at=datetime.now(timezone.utc))


RUN = RunVersion("dev", "job", "r1", "dense", 1)


def test_a_result_and_its_processed_mark_survive_a_reopen(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    outbox.record(result(1), RUN)
    outbox.close()
    again = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    assert again.processed("job", f"{1:064x}") and not again.processed("other", f"{1:064x}")
    rows = again.next_rows(500)
    assert [r.key for r in rows] == [result(1).key]
    batch = ResultsBatch.model_validate_json(batch_body(rows))
    assert batch.results[0].input == "f1.npy" and batch.sketches == []
    assert again.status().pending == 1 and again.pending_bytes > 0
    again.ack(rows)
    assert again.status().pending == 0 and again.pending_bytes == 0 and again.status().oldest_age_seconds is None


def test_a_run_becomes_one_sketch_window_per_tensor_and_feature(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    rng = np.random.default_rng(0)
    for index in range(3):
        x = rng.standard_normal((10, 2)).astype(np.float32)
        outbox.record(result(index), RUN, partials("input", {"input": x}) + partials("output", {"output": x[:, :1]}))
    assert outbox.unfinished_runs() == [("job", "r1")]
    assert outbox.finish_run("dev", "job", "r1") == 3
    assert outbox.unfinished_runs() == [] and outbox.finish_run("dev", "job", "r1") == 0
    batch = ResultsBatch.model_validate_json(batch_body(outbox.next_rows(500)))
    windows = {(s.kind, s.tensor, s.index): s for s in batch.sketches}
    assert set(windows) == {("input", "input", 0), ("input", "input", 1), ("output", "output", 0)}
    window = windows[("input", "input", 1)]
    assert window.count == 30 and window.version == 1 and window.key == "dev.job.r1.v1.input.input.1"
    sketch = kll_floats_sketch.deserialize(base64.b64decode(window.kll_b64))
    assert sketch.n == 30 and window.window_start <= window.window_end


def test_full_outbox_drops_the_oldest_raw_results_keeps_sketches_and_counts(tmp_path: Path) -> None:
    one = len(result(0).model_dump_json())
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings(max_bytes=one * 5 + one // 2))
    x = np.ones((4, 2), dtype=np.float32)
    for index in range(8):
        outbox.record(result(index), RUN, partials("input", {"input": x}))
    outbox.finish_run("dev", "job", "r1")  # the sketches are kept although they push past the limit
    rows = outbox.next_rows(500)
    kept = [r.key for r in rows if r.kind == "result"]
    assert len(kept) < 5 and kept == [result(i).key for i in range(8 - len(kept), 8)], kept
    assert sum(r.kind == "sketch" for r in rows) == 2
    assert outbox.status().dropped_total == 8 - len(kept)
    assert all(outbox.processed("job", f"{i:064x}") for i in range(8))  # dropped, not to be run again


def test_pause_policy_drops_nothing_and_reports_full(tmp_path: Path) -> None:
    one = len(result(0).model_dump_json())
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings(max_bytes=one * 2, policy="pause"))
    for index in range(3):
        outbox.record(result(index), RUN)
    assert outbox.full() and outbox.status().pending == 3 and outbox.status().dropped_total == 0
    outbox.ack(outbox.next_rows(2))
    assert not outbox.full()


def test_batches_are_bounded_in_items_and_bytes(tmp_path: Path) -> None:
    one = len(result(0, payload=200).model_dump_json())
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings(batch_max_bytes=one * 3))
    for index in range(10):
        outbox.record(result(index, payload=200), RUN)
    assert len(outbox.next_rows(500)) == 3
    assert len(outbox.next_rows(2)) == 2


def test_quarantine_moves_and_counts_refused_rows(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    outbox.record(result(1), RUN)
    outbox.record(result(2), RUN)
    bad = outbox.next_rows(500)[:1]
    outbox.quarantine(bad, "control plane refused the request (422): key")
    assert [r.key for r in outbox.next_rows(500)] == [result(2).key]
    assert outbox.counters()["quarantined"] == 1
    outbox.count("upload_failures", 2)
    assert outbox.status().upload_failures_total == 2


def test_job_state_round_trips(tmp_path: Path) -> None:
    from jetfleet.agent.jobs.schedule import JobState

    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    state = JobState(spec="every:60.0", anchor=1.5, last_slot=61.5, generation=3)
    outbox.save_job_state("job", state)
    assert outbox.job_states() == {"job": state}
    assert json.loads(batch_body([])) == {"results": [], "sketches": []}


def test_forgetting_a_job_keeps_its_results_but_not_its_processed_marks(tmp_path: Path) -> None:
    from jetfleet.agent.jobs.schedule import JobState

    outbox = Outbox(tmp_path / "o.sqlite3", OutboxSettings())
    outbox.record(result(1), RUN)
    outbox.save_job_state("job", JobState(spec="on_demand", anchor=0.0, last_slot=None, generation=2))
    outbox.forget_job("job")
    assert not outbox.processed("job", f"{1:064x}") and outbox.job_states() == {}
    assert [r.key for r in outbox.next_rows(500)] == [result(1).key]

"""The job executor against a real model server (``jetfleet serve-model``): files in, results and sketches out."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from jetfleet.agent.jobs.counters import JobCounters
from jetfleet.agent.jobs.outbox import Outbox, OutboxSettings, batch_body
from jetfleet.agent.jobs.plan import Endpoint
from jetfleet.agent.jobs.runner import KnownFile, RunContext, RunSummary, run_job
from jetfleet.jobs import DesiredJob, JobResult, ResultsBatch
from jetfleet.manifest import TensorSpecEntry
from tests.modelserver.models import dense_expected, dense_onnx
from tests.support.processes import free_port, jetfleet_cmd, managed

pytestmark = pytest.mark.slow
SIGNATURE = (TensorSpecEntry(name="input", datatype="FP32", shape=(-1, 4)),)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("jobs-serve")
    port = free_port()
    argv = jetfleet_cmd("serve-model", "--model-dir", str(dense_onnx(root / "models")), "--name", "dense",
                        "--version", "1", "--port", str(port))
    with managed(argv, root / "server.log", ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout=60):
        yield f"http://127.0.0.1:{port}"


def job(folder: Path) -> DesiredJob:
    return DesiredJob(name="score", model="dense", tag="prod", input_dir=str(folder), schedule="on_demand")


async def run(folder: Path, outbox: Outbox, endpoint: Endpoint | list[Endpoint | None] | None) -> RunSummary:
    answers = endpoint if isinstance(endpoint, list) else None

    def where(_model: str) -> Endpoint | None:
        if answers is not None:
            return answers.pop(0) if len(answers) > 1 else answers[0]
        return endpoint  # type: ignore[return-value]

    async def signature(_model: str, _endpoint: Endpoint) -> tuple[TensorSpecEntry, ...]:
        return SIGNATURE

    async with httpx.AsyncClient() as http:
        context = RunContext(device_id="dev1", outbox=outbox, http=http, endpoint=where, signature=signature,
                             counters=JobCounters(), stop=asyncio.Event(), poll_seconds=0.05)
        return await run_job(job(folder), context)


def results(outbox: Outbox) -> dict[str, JobResult]:
    batch = ResultsBatch.model_validate_json(batch_body(outbox.next_rows(500)))
    return {r.input: r for r in batch.results}


def test_a_run_processes_each_file_once_and_reports_bad_files(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    x = np.array([[0.5, -1.0, 2.0, 0.25], [1, 2, 3, 4]], dtype=np.float32)
    np.save(folder / "a.npy", x)
    (folder / "b.csv").write_text("f0,f1,f2,f3\n1,2,3,4\n")
    np.save(folder / "bad.npy", np.zeros((2, 3), dtype=np.float32))
    (folder / "notes.txt").write_text("ignored: not an input type")
    outbox = Outbox(tmp_path / "outbox.sqlite3", OutboxSettings())
    endpoint = Endpoint(1, server)
    summary = asyncio.run(run(folder, outbox, endpoint))
    assert summary.complete and (summary.results, summary.errors) == (2, 1)
    found = results(outbox)
    assert set(found) == {"a.npy", "b.csv", "bad.npy"}
    assert found["a.npy"].version == 1 and found["a.npy"].error is None
    assert np.allclose(found["a.npy"].outputs["output"], dense_expected(x), rtol=1e-5)  # type: ignore[index]
    assert found["bad.npy"].outputs is None
    assert found["bad.npy"].error == "bad.npy: input input: shape [2, 3], the model expects [-1, 4] (-1 means any size)"
    assert summary.windows == 4 + 3  # input features + output features, one window each for version 1

    # a renamed copy is not a new input; a rewritten file and a new file are
    outbox.ack(outbox.next_rows(500))
    shutil.copy(folder / "a.npy", folder / "a-renamed.npy")
    np.save(folder / "bad.npy", np.ones((1, 4), dtype=np.float32))
    (folder / "c.json").write_text(json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                                           "data": [0, 0, 0, 1]}]}))
    second = asyncio.run(run(folder, outbox, endpoint))
    assert set(results(outbox)) == {"bad.npy", "c.json"}
    assert second.skipped == 3 and second.results == 2 and second.run_id != summary.run_id


def test_unchanged_files_are_not_read_again_within_a_process(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((1, 4), dtype=np.float32))
    outbox = Outbox(tmp_path / "outbox.sqlite3", OutboxSettings())
    known: dict[Path, KnownFile] = {}

    async def twice() -> tuple[RunSummary, RunSummary]:
        async def signature(_model: str, _endpoint: Endpoint) -> tuple[TensorSpecEntry, ...]:
            return SIGNATURE

        async with httpx.AsyncClient() as http:
            context = RunContext(device_id="dev1", outbox=outbox, http=http, endpoint=lambda _m: Endpoint(1, server),
                                 signature=signature, counters=JobCounters(), stop=asyncio.Event(), known=known)
            first = await run_job(job(folder), context)
            outbox.forget_job("score")  # the mark is gone: only the in-process cache can skip the file now
            return first, await run_job(job(folder), context)

    first, second = asyncio.run(twice())
    assert (first.results, second.results, second.skipped, second.errors) == (1, 0, 1, 0)
    assert list(known) == [folder / "a.npy"]


def test_a_run_waits_for_the_model_instead_of_failing(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((1, 4), dtype=np.float32))
    outbox = Outbox(tmp_path / "outbox.sqlite3", OutboxSettings())
    down = Endpoint(1, f"http://127.0.0.1:{free_port()}")  # routed, but nothing answers there yet
    summary = asyncio.run(run(folder, outbox, [None, None, down, down, Endpoint(1, server)]))
    assert summary.complete and summary.results == 1 and summary.errors == 0
    assert results(outbox)["a.npy"].version == 1


def test_marks_of_files_gone_from_the_folder_age_out(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, value in (("a.npy", 1.0), ("b.npy", 2.0)):
        np.save(folder / name, np.full((1, 4), value, dtype=np.float32))
    clock = [1000.0]
    outbox = Outbox(tmp_path / "outbox.sqlite3", OutboxSettings(processed_retention_seconds=3600),
                    clock=lambda: clock[0])
    known: dict[Path, KnownFile] = {}

    async def run_once() -> RunSummary:
        async def signature(_model: str, _endpoint: Endpoint) -> tuple[TensorSpecEntry, ...]:
            return SIGNATURE

        async with httpx.AsyncClient() as http:
            context = RunContext(device_id="dev1", outbox=outbox, http=http, endpoint=lambda _m: Endpoint(1, server),
                                 signature=signature, counters=JobCounters(), stop=asyncio.Event(), known=known)
            return await run_job(job(folder), context)

    assert asyncio.run(run_once()).results == 2
    b_sha = known[folder / "b.npy"].sha256
    gone = (folder / "b.npy").read_bytes()
    (folder / "b.npy").unlink()
    clock[0] += 1800
    asyncio.run(run_once())
    assert list(known) == [folder / "a.npy"] and outbox.processed("score", b_sha)  # within the retention
    clock[0] += 1801  # b last seen 3601 s ago; a is seen at every run
    asyncio.run(run_once())
    assert not outbox.processed("score", b_sha) and outbox.processed("score", known[folder / "a.npy"].sha256)
    (folder / "b.npy").write_bytes(gone)  # put back after the retention: a new input again
    assert asyncio.run(run_once()).results == 1

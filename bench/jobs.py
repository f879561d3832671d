"""``jetfleet bench jobs``: what a headless job adds per input over calling the model endpoint directly, and
how many bytes the drift sketches of a window take compared with the raw inputs they summarize.

Both sides call the same real ``jetfleet serve-model`` subprocess (a dense ONNX model) over KServe v2 JSON on
127.0.0.1, one request per input file, sequentially. "direct" is a bare httpx POST per input (the array already
in memory). "job" is the agent's executor (:func:`jetfleet.agent.jobs.runner.run_job`): list the folder, read
and hash each file, skip processed ones, parse and check it, infer, write the result, the processed mark and
the partial sketches in one fsync'd SQLite transaction, and merge the sketch windows at the end of the run.
Needs jetfleet[modelserver,jobs].
"""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv
from jetfleet.bench.testmodels import write_dense_onnx
from jetfleet.modelfiles.layout import make_metadata, version_dir, write_metadata

OUTPUTS = 8


def run(inputs: int, batch: int, features: int, window_rows: list[int]) -> dict[str, Any]:
    from jetfleet.agent.jobs.inputs import request_body

    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-jobs-") as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(1)
        arrays = [rng.standard_normal((batch, features)).astype(np.float32) for _ in range(inputs)]
        folder = root / "in"
        folder.mkdir()
        for index, array in enumerate(arrays):
            np.save(folder / f"{index:06d}.npy", array)
        port = free_port()
        argv = jetfleet_argv("serve-model", "--model-dir", str(_install(root, features)), "--name", "dense",
                             "--version", "1", "--port", str(port))
        server = ManagedProcess(argv, root / "server.log")
        try:
            url = f"http://127.0.0.1:{port}"
            server.wait_http(f"{url}/v2/health/ready", timeout=120)
            direct = asyncio.run(_direct(url, [request_body({"input": a}) for a in arrays]))
            job_seconds, windows, window_bytes = asyncio.run(_job(url, folder, root / "outbox.sqlite3"))
        finally:
            server.stop()
    per_direct, per_job = direct / inputs * 1000, job_seconds / inputs * 1000
    result: dict[str, Any] = {
        "setup": f"{inputs} .npy files, batch {batch}, {features} -> {OUTPUTS} dense, sequential; python "
                 f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}",
        "direct_ms_per_input": round(per_direct, 3),
        "job_ms_per_input": round(per_job, 3),
        "job_overhead_ms_per_input": round(per_job - per_direct, 3),
        "job_windows": windows,
        "job_sketch_bytes_per_run": window_bytes,
        "job_raw_input_bytes_per_run": sum(a.nbytes for a in arrays),
    }
    result["sketch_vs_raw"] = [_window(rows, features) for rows in window_rows]
    return result


def _install(root: Path, features: int) -> Path:
    models = root / "models"
    directory = version_dir(models, "dense", "1")
    directory.mkdir(parents=True)
    write_dense_onnx(directory / "model.onnx", features=features, outputs=OUTPUTS, seed=0)
    write_metadata(directory, make_metadata(directory / "model.onnx", name="dense", version="1",
                                                  manifest_verified=True))
    return directory


async def _direct(url: str, bodies: list[dict[str, Any]]) -> float:
    async with httpx.AsyncClient() as http:
        for body in bodies[:5]:
            (await http.post(f"{url}/v2/models/dense/infer", json=body)).raise_for_status()
        start = time.perf_counter()
        for body in bodies:
            response = await http.post(f"{url}/v2/models/dense/infer", json=body)
            response.raise_for_status()
            response.json()
        return time.perf_counter() - start


async def _job(url: str, folder: Path, db: Path) -> tuple[float, int, int]:
    from jetfleet.agent.jobs.counters import JobCounters
    from jetfleet.agent.jobs.outbox import Outbox, OutboxSettings
    from jetfleet.agent.jobs.plan import Endpoint
    from jetfleet.agent.jobs.runner import RunContext, run_job
    from jetfleet.jobs import DesiredJob, SketchWindow

    outbox = Outbox(db, OutboxSettings())
    job = DesiredJob(name="bench", model="dense", tag="bench", input_dir=str(folder), schedule="on_demand")

    async def no_signature(_model: str, _endpoint: Endpoint) -> None:
        return None

    async with httpx.AsyncClient() as http:
        context = RunContext(device_id="bench", outbox=outbox, http=http, endpoint=lambda _m: Endpoint(1, url),
                             signature=no_signature, counters=JobCounters(), stop=asyncio.Event())
        start = time.perf_counter()
        summary = await run_job(job, context)
        elapsed = time.perf_counter() - start
    rows = outbox.next_rows(100_000)
    sketch_bytes = sum(len(SketchWindow.model_validate_json(r.body).kll_b64) for r in rows if r.kind == "sketch")
    outbox.close()
    return elapsed, summary.windows, sketch_bytes * 3 // 4


def _window(rows: int, features: int) -> dict[str, Any]:
    """Serialized KLL bytes of one window (all features) vs the raw float32 inputs of that window."""
    from jetfleet.agent.jobs.sketches import merged, partials

    x = np.random.default_rng(rows).standard_normal((rows, features)).astype(np.float32)
    total = 0
    for partial in partials("input", {"input": x}):
        _count, b64 = merged([partial.kll])
        total += len(base64.b64decode(b64))
    raw = x.nbytes
    return {"rows": rows, "features": features, "raw_bytes": raw, "sketch_bytes": total,
            "sketch_to_raw_ratio": round(total / raw, 4)}

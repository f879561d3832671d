"""``jetfleet bench results`` and ``jetfleet bench drift``: results ingest and drift evaluation of the control plane.

- results: simulated devices post gzip batches of job results (100 per batch by default) to a real control
  plane, as the agent's outbox does; reports results stored per second and the server's CPU per result.
- drift: a database holding one window of KLL sketches per feature for every device (100 features x 1000
  devices by default) and a pushed reference; times one fleet-wide evaluation (load, merge, statistics).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jetfleet.bench.backend import local_backend


@dataclass(frozen=True)
class IngestResult:
    database: str
    devices: int
    batch_size: int
    concurrency: int
    duration_s: float
    batches: int
    errors: int
    results_per_s: float
    batch_p50_ms: float
    batch_p99_ms: float
    batch_bytes_gzip: int
    server_cpu_ms_per_result: float


def _batch(device_id: str, size: int) -> bytes:
    run = uuid.uuid4().hex
    created = datetime.now(timezone.utc).isoformat()
    results = []
    for i in range(size):
        sha = hashlib.sha256(f"{run}/{i}".encode()).hexdigest()
        results.append({"key": f"{device_id}.bench.{run}.{sha[:16]}", "job": "bench", "run_id": run,
                        "input": f"input-{i:05d}.npy", "input_sha256": sha, "model": "dense", "version": 1,
                        "outputs": {"output": [[0.1 * (i % 10), 0.5, 0.25, 0.125]]}, "created_at": created})
    return gzip.compress(json.dumps({"results": results}).encode())


async def _ingest(url: str, devices: int, batch_size: int, concurrency: int,
                  duration: float) -> tuple[list[float], int, int]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        creds = []
        for i in range(devices):
            device_id = f"bench-{i:05d}"
            async with session.post(f"{url}/api/v1/edge-devices/register",
                                    json={"device_id": device_id, "device_name": device_id,
                                          "hardware": {"platform": "x86_64", "arch": "x86_64"}}) as response:
                creds.append((device_id, (await response.json())["device_token"]))
        latencies: list[float] = []
        errors = 0
        size = 0
        deadline = time.perf_counter() + duration

        async def worker(start: int) -> None:
            nonlocal errors, size
            turn = start
            while time.perf_counter() < deadline:
                device_id, token = creds[turn % len(creds)]
                body = _batch(device_id, batch_size)  # prepared before the clock starts for this request
                size = len(body)
                began = time.perf_counter()
                async with session.post(f"{url}/api/v1/edge-devices/{device_id}/results", data=body,
                                        headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip",
                                                 "Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - began)
                    else:
                        errors += 1
                turn += concurrency

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return latencies, errors, size


def run_ingest(*, database_url: str | None, devices: int, batch_size: int, concurrency: int,
               duration: float) -> IngestResult:
    with local_backend(database_url) as (url, server):
        cpu_before = server.cpu_seconds()
        began = time.perf_counter()
        latencies, errors, size = asyncio.run(_ingest(url, devices, batch_size, concurrency, duration))
        elapsed = time.perf_counter() - began
        cpu = server.cpu_seconds() - cpu_before  # includes the registrations (a few ms each)
    stored = len(latencies) * batch_size
    ordered = sorted(latencies) or [0.0]
    return IngestResult(database="postgresql" if database_url and database_url.startswith("postgresql") else "sqlite",
                        devices=devices, batch_size=batch_size, concurrency=concurrency, duration_s=round(elapsed, 2),
                        batches=len(latencies), errors=errors, results_per_s=round(stored / elapsed, 1),
                        batch_p50_ms=round(statistics.median(ordered) * 1000, 2),
                        batch_p99_ms=round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
                        batch_bytes_gzip=size, server_cpu_ms_per_result=round(cpu * 1000 / max(stored, 1), 3))


@dataclass(frozen=True)
class DriftBenchResult:
    devices: int
    features: int
    rows_per_window: int
    sketches: int
    sketch_bytes_per_window: int
    raw_bytes_per_window: int
    setup_s: float
    evaluate_s: float
    evaluate_one_device_s: float
    drift: bool


def run_drift(*, devices: int, features: int, rows: int, database_url: str | None) -> DriftBenchResult:
    import numpy as np
    from datasketches import kll_floats_sketch
    from sqlalchemy import insert
    from sqlalchemy.orm import sessionmaker

    from jetfleet.backend import drift
    from jetfleet.backend.db import create_db_engine, migrate
    from jetfleet.backend.jobs_models import SketchRow
    from jetfleet.backend.settings import BackendSettings

    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-drift-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'drift.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        sessions = sessionmaker(engine)
        settings = BackendSettings(database_url=url, admin_token="bench-token", data_dir=Path(tmp))
        rng = np.random.default_rng(0)
        began = time.perf_counter()
        now = datetime.now(timezone.utc)
        model = f"bench{uuid.uuid4().hex[:8]}"
        with sessions.begin() as session:
            reference = drift.reference_sketches({"input": rng.normal(size=(10_000, features)).astype(np.float32)})
            drift.store_reference(session, model, 1, reference, source="pushed", now=now)
        rows_out, sketch_bytes = [], 0
        start, end = now - timedelta(minutes=5), now
        for device in range(devices):
            window = np.asfortranarray(rng.normal(size=(rows, features)).astype(np.float32))
            for index in range(features):
                sketch = kll_floats_sketch(drift.KLL_K)
                sketch.update(window[:, index])
                blob = sketch.serialize()
                sketch_bytes += len(base64.b64encode(blob)) if device == 0 else 0
                rows_out.append({"key": f"d{device}.bench.{index}", "device_id": f"d{device}", "model": model,
                                 "version": 1, "kind": "input", "tensor": "input", "feature_index": index,
                                 "count": rows, "sketch": blob, "window_start": start, "window_end": end,
                                 "received_at": now})
        with sessions.begin() as session:
            for chunk in range(0, len(rows_out), 10_000):
                session.execute(insert(SketchRow), rows_out[chunk:chunk + 10_000])
        setup = time.perf_counter() - began
        with sessions.begin() as session:
            began = time.perf_counter()
            report = drift.evaluate(session, model, 1, settings)
            evaluate = time.perf_counter() - began
            began = time.perf_counter()
            drift.evaluate(session, model, 1, settings, device_id="d0")
            one = time.perf_counter() - began
        engine.dispose()
    return DriftBenchResult(devices=devices, features=features, rows_per_window=rows, sketches=devices * features,
                            sketch_bytes_per_window=sketch_bytes, raw_bytes_per_window=rows * features * 4,
                            setup_s=round(setup, 2), evaluate_s=round(evaluate, 3),
                            evaluate_one_device_s=round(one, 3), drift=report.drift)


def as_dict(result: IngestResult | DriftBenchResult) -> dict[str, Any]:
    return asdict(result)

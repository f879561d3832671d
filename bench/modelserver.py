"""``jetfleet bench model-server``: what the KServe v2 HTTP hop adds to an in-process ONNX Runtime call.

The same small dense ONNX model is run N times in-process and N times through a real
``jetfleet serve-model`` subprocess on 127.0.0.1, with tritonclient (binary tensors) and with plain
JSON over one keep-alive connection. Needs jetfleet[modelserver,modelserver-dev].
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv
from jetfleet.bench.testmodels import write_dense_onnx
from jetfleet.errors import PermanentError
from jetfleet.modelfiles.layout import make_metadata, version_dir, write_metadata

WARMUP = 20
OUTPUTS = 16


def run_benchmark(requests: int, batch: int, features: int, as_json: bool = False) -> None:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-") as tmp:
        model_dir = _install_model(Path(tmp), features)
        x = np.random.default_rng(1).standard_normal((batch, features)).astype(np.float32)
        session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        results = {"in-process ONNX Runtime": _time(lambda: session.run(None, {"input": x}), requests)}
        with _server(model_dir) as url:
            results["KServe v2, tritonclient (binary)"] = _time(_triton_call(url, x), requests)
            results["KServe v2, plain JSON (httpx)"] = _time(_json_call(url, x), requests)
    rows = {mode: _summary(samples, results["in-process ONNX Runtime"]) for mode, samples in results.items()}
    setup = (f"{requests} requests, batch {batch}, {features} -> {OUTPUTS} dense; python {platform.python_version()}, "
             f"onnxruntime {ort.__version__} (CPU), {os.cpu_count()} CPUs, {platform.machine()}")
    if as_json:
        print(json.dumps({"setup": setup, "modes": rows}))
        return
    _print_table(rows, setup)


def _summary(samples: np.ndarray[Any, Any], base: np.ndarray[Any, Any]) -> dict[str, float]:
    p50 = float(np.percentile(samples, 50))
    return {"mean_ms": round(float(samples.mean()), 3), "p50_ms": round(p50, 3),
            "p99_ms": round(float(np.percentile(samples, 99)), 3),
            "added_p50_ms": round(p50 - float(np.percentile(base, 50)), 3),
            "added_mean_ms": round(float(samples.mean() - base.mean()), 3)}


def _print_table(rows: dict[str, dict[str, float]], setup: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="model server overhead (milliseconds per request)", caption=setup)
    table.add_column("mode")
    for column in next(iter(rows.values())):
        table.add_column(column, justify="right")
    for mode, values in rows.items():
        table.add_row(mode, *(f"{value:.3f}" for value in values.values()))
    Console(width=max(Console().width, 110)).print(table)


def _install_model(root: Path, features: int) -> Path:
    model_dir = version_dir(root, "bench", "1")
    artifact = write_dense_onnx(model_dir / "model.onnx", features=features, outputs=OUTPUTS)
    write_metadata(model_dir, make_metadata(artifact, name="bench", version="1", manifest_verified=True))
    return model_dir


def _time(call: Callable[[], Any], requests: int) -> np.ndarray[Any, Any]:
    for _ in range(WARMUP):
        call()
    samples = np.empty(requests)
    for index in range(requests):
        started = time.perf_counter()
        call()
        samples[index] = (time.perf_counter() - started) * 1000.0
    return samples


def _triton_call(url: str, x: np.ndarray[Any, Any]) -> Callable[[], Any]:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return lambda: client.infer("bench", [tensor], model_version="1").as_numpy("output")


def _json_call(url: str, x: np.ndarray[Any, Any]) -> Callable[[], Any]:
    import httpx

    client = httpx.Client(base_url=url, timeout=10)
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}

    def call() -> Any:
        response = client.post("/v2/models/bench/versions/1/infer", json=body)
        response.raise_for_status()
        return response.json()["outputs"][0]["data"]

    return call


class _server:
    """A ``jetfleet serve-model`` subprocess, stopped by PID on exit."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir

    def __enter__(self) -> str:

        port = free_port()
        self.proc = ManagedProcess(jetfleet_argv("serve-model", "--model-dir", str(self.model_dir), "--name", "bench",
                                                 "--version", "1", "--port", str(port), "--log-level", "warning"),
                                   self.model_dir.parent / "server.log")
        url = f"http://127.0.0.1:{port}"
        try:
            self.proc.wait_http(f"{url}/v2/health/ready", timeout=60)
        except PermanentError:
            self.__exit__()
            raise
        return url

    def __exit__(self, *_: object) -> None:
        self.proc.stop()


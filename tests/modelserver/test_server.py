"""``jetfleet serve-model`` as a real process, driven by tritonclient and plain HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from tests.modelserver.models import dense_expected, dense_onnx
from tests.support.processes import ManagedProcess, free_port, jetfleet_cmd, managed, subprocess_env

pytestmark = pytest.mark.slow


def serve_cmd(model_dir: Path, port: int, name: str = "dense", version: str = "1") -> list[str]:
    return jetfleet_cmd("serve-model", "--model-dir", str(model_dir), "--name", name, "--version", version,
                        "--port", str(port))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ManagedProcess]]:
    root = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"127.0.0.1:{port}"
    with managed(serve_cmd(dense_onnx(root / "models"), port), root / "server.log",
                 ready_url=f"http://{url}/v2/health/ready", timeout=60) as proc:
        yield url, proc


def _infer(client: Any, x: np.ndarray[Any, Any], version: str = "1", **kwargs: Any) -> Any:
    tensor = triton.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer("dense", [tensor], model_version=version, **kwargs)


def test_health_and_metadata(server: tuple[str, ManagedProcess]) -> None:
    client = triton.InferenceServerClient(url=server[0])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("dense") and client.is_model_ready("dense", "1")
    assert not client.is_model_ready("dense", "2")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata("dense", "1")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]


@pytest.mark.parametrize("version", ["1", ""])
def test_tritonclient_infers_with_binary_tensors(server: tuple[str, ManagedProcess], version: str) -> None:
    client = triton.InferenceServerClient(url=server[0])
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    result = _infer(client, x, version=version)
    np.testing.assert_allclose(result.as_numpy("output"), dense_expected(x), rtol=1e-5, atol=1e-6)


def test_gzip_requests_are_accepted(server: tuple[str, ManagedProcess]) -> None:
    client = triton.InferenceServerClient(url=server[0])
    x = np.ones((1, 4), dtype=np.float32)
    result = _infer(client, x, request_compression_algorithm="gzip")
    np.testing.assert_allclose(result.as_numpy("output"), dense_expected(x), rtol=1e-5)


def test_plain_json_inference(server: tuple[str, ManagedProcess]) -> None:
    body = {"id": "q1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                    "data": [[1, 2, 3, 4], [0, 0, 0, 0]]}]}
    response = httpx.post(f"http://{server[0]}/v2/models/dense/versions/1/infer", json=body, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["id"] == "q1" and answer["model_name"] == "dense" and answer["model_version"] == "1"
    (output,) = answer["outputs"]
    assert output["name"] == "output" and output["datatype"] == "FP32" and output["shape"] == [2, 3]
    expected = dense_expected(np.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(output["data"], expected.ravel(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("model", "version", "message"), [
    ("yolo", "1", "unknown model 'yolo'; this server serves 'dense'"),
    ("dense", "2", "model 'dense' has no version '2'; this server serves version 1"),
])
def test_unknown_model_or_version_is_404(server: tuple[str, ManagedProcess], model: str, version: str,
                                         message: str) -> None:
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    response = httpx.post(f"http://{server[0]}/v2/models/{model}/versions/{version}/infer", json=body, timeout=10)
    assert response.status_code == 404 and response.json() == {"error": message}
    assert httpx.get(f"http://{server[0]}/v2/models/{model}/versions/{version}", timeout=10).status_code == 404


def test_wrong_shape_and_dtype_reach_tritonclient_as_clear_errors(server: tuple[str, ManagedProcess]) -> None:
    client = triton.InferenceServerClient(url=server[0])
    with pytest.raises(InferenceServerException, match=r"input 'input': shape \[2, 5\] does not match the "
                                                       r"expected \[-1, 4\] \(FP32") as caught:
        _infer(client, np.zeros((2, 5), dtype=np.float32))
    assert caught.value.status() == "400"
    tensor = triton.InferInput("input", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 4)))
    with pytest.raises(InferenceServerException, match="datatype FP64 does not match the expected FP32"):
        client.infer("dense", [tensor])
    tensor = triton.InferInput("pixels", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"unknown input 'pixels' .* expected inputs: 'input'"):
        client.infer("dense", [tensor])


def test_concurrent_clients_each_get_their_own_answer(server: tuple[str, ManagedProcess]) -> None:
    def worker(seed: int) -> bool:
        client = triton.InferenceServerClient(url=server[0])
        rng = np.random.default_rng(seed)
        for _ in range(20):
            x = rng.standard_normal((seed % 3 + 1, 4)).astype(np.float32)
            if not np.allclose(_infer(client, x).as_numpy("output"), dense_expected(x), rtol=1e-5, atol=1e-6):
                return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(worker, range(4), timeout=60))


def test_metrics_count_requests_errors_and_latency(server: tuple[str, ManagedProcess]) -> None:
    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"http://{server[0]}/metrics", timeout=10).text
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    labels = (("model", "dense"), ("version", "1"))
    before = scrape()
    client = triton.InferenceServerClient(url=server[0])
    for _ in range(3):
        _infer(client, np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(InferenceServerException):
        _infer(client, np.zeros((1, 2), dtype=np.float32))
    after = scrape()

    def added(name: str, extra: tuple[tuple[str, str], ...] = ()) -> float:
        key = (name, tuple(sorted(labels + extra)))
        return after[key] - before.get(key, 0.0)

    assert added("jetfleet_model_inference_requests_total") == 4
    assert added("jetfleet_model_inference_errors_total", (("status", "400"),)) == 1
    assert added("jetfleet_model_inference_duration_seconds_count") == 3
    assert added("jetfleet_model_inference_duration_seconds_bucket", (("le", "+Inf"),)) == 3
    assert after[("jetfleet_model_ready", labels)] == 1
    info = [key for key in after if key[0] == "jetfleet_model_info"]
    assert info and ("backend", "onnxruntime:CPUExecutionProvider") in info[0][1]
    assert after[("jetfleet_model_load_duration_seconds", labels)] > 0


def test_a_tampered_artifact_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    model_dir = dense_onnx(tmp_path / "models")
    (model_dir / "model.onnx").write_bytes((model_dir / "model.onnx").read_bytes() + b"\0")
    done = subprocess.run(serve_cmd(model_dir, free_port()), env=subprocess_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    assert "cannot serve model dense version 1" in done.stderr and "sha256 is" in done.stderr
    assert "Traceback" not in done.stderr


def test_flags_must_match_model_json(tmp_path: Path) -> None:
    model_dir = dense_onnx(tmp_path / "models", version="4")
    done = subprocess.run(serve_cmd(model_dir, free_port(), version="5"), env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "model.json holds dense version 4, but the server was asked to serve dense version 5" in done.stderr


def test_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    done = subprocess.run(serve_cmd(tmp_path, free_port(), version="v1"), env=subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "key '--version': must be a positive integer" in done.stderr


def test_ready_only_after_the_model_is_loaded(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from jetfleet.modelserver.app import create_app
    from jetfleet.modelserver.host import ModelHost, ServeSettings
    from jetfleet.modelserver.metrics import InferenceMetrics

    settings = ServeSettings(model_dir=dense_onnx(tmp_path / "models"), name="dense", version="1", port=1)
    host = ModelHost(settings)
    registry = CollectorRegistry()
    app = create_app(host, InferenceMetrics(registry, "dense", "1"), registry)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://model") as client:
            body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
            codes = [(await client.get("/v2/health/live")).status_code,
                     (await client.get("/v2/health/ready")).status_code,
                     (await client.get("/v2/models/dense/ready")).status_code,
                     (await client.post("/v2/models/dense/infer", json=body)).status_code]
            await host.load()
            codes += [(await client.get("/v2/health/ready")).status_code,
                      (await client.post("/v2/models/dense/infer", json=body)).status_code]
            return codes

    assert asyncio.run(scenario()) == [200, 503, 503, 503, 200, 200]


def test_onnx_falling_back_to_the_cpu_on_a_jetson_is_logged_as_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A real ONNX Runtime load; only the machine facts are those of a Jetson image without pycuda."""
    from jetfleet.modelserver.host import ModelHost, ServeSettings
    from jetfleet.modelserver.selection import RuntimeFacts

    settings = ServeSettings(model_dir=dense_onnx(tmp_path / "models"), name="dense", version="1", port=1)
    host = ModelHost(settings, probe=lambda: RuntimeFacts(jetson=True, missing=("pycuda",)))
    with caplog.at_level("INFO", logger="jetfleet.modelserver.host"):
        asyncio.run(host.load())
    host.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert warnings == ["serving ONNX on ONNX Runtime's CPU provider on a Jetson: pycuda did not import (use the L4T "
                        "model-server image, which builds pycuda against JetPack's CUDA and sees JetPack's TensorRT)"]
    assert host.state_facts()[1]["backend"] == "onnxruntime:CPUExecutionProvider"


def test_the_overhead_benchmark_runs_end_to_end() -> None:
    done = subprocess.run(jetfleet_cmd("bench", "model-server", "--requests", "10", "--json"), env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    modes = json.loads(done.stdout)["modes"]
    assert set(modes) == {"in-process ONNX Runtime", "KServe v2, tritonclient (binary)",
                          "KServe v2, plain JSON (httpx)"}
    assert modes["in-process ONNX Runtime"]["added_p50_ms"] == 0
    assert all(row["p99_ms"] >= row["p50_ms"] > 0 for row in modes.values())

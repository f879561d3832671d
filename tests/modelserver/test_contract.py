"""The model server's OpenAPI contract (KServe v2) holds: schemathesis (all phases, all checks) against a real
``jetfleet serve-model``. Every operation in /openapi.json is fuzzed, so a route added later is covered too."""

from __future__ import annotations

from pathlib import Path

from tests.modelserver.models import dense_onnx
from tests.modelserver.test_server import serve_cmd
from tests.support.processes import free_port, managed
from tests.support.schemathesis_run import run_schemathesis


def test_model_server_matches_its_schema(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with managed(serve_cmd(dense_onnx(tmp_path / "models"), port), tmp_path / "server.log",
                 ready_url=f"{url}/v2/health/ready", timeout=60):
        run_schemathesis(f"{url}/openapi.json", tmp_path, max_examples=20)

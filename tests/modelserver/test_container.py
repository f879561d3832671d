"""The model-server image on a real Docker Engine: host networking, read-only model dir, tritonclient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jetfleet.agent.ota.runtime.model_container import ModelContainerSpec, daemon_runtimes, run_options
from jetfleet.modelfiles.layout import MODEL_SERVER_UID
from tests.modelserver.models import dense_expected, dense_onnx, world_readable
from tests.support.docker_engine import DockerEngine
from tests.support.processes import free_port, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_container_serves_an_onnx_model_to_tritonclient(docker_engine: DockerEngine, model_server_image: str,
                                                         tmp_path: Path) -> None:
    import tritonclient.http as triton

    model_dir = dense_onnx(tmp_path / "models", name="dense", version="7", scale=2.0)
    world_readable(model_dir, engines_owner=MODEL_SERVER_UID)
    port = free_port()
    spec = ModelContainerSpec(image=model_server_image, name="dense", version="7", model_dir=model_dir, port=port)
    container = docker_engine.client.containers.run(**run_options(spec, daemon_runtimes(docker_engine.client.info())))
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        wait_until(lambda: _ready(client, container), 90, interval=0.5, what="model container ready")
        x = np.arange(8, dtype=np.float32).reshape(2, 4) - 3.0
        tensor = triton.InferInput("input", [2, 4], "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer("dense", [tensor], model_version="7")
        np.testing.assert_allclose(result.as_numpy("output"), dense_expected(x, scale=2.0), rtol=1e-5)
        assert result.get_response()["model_version"] == "7"

        container.reload()
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        mounts = {mount["Destination"]: mount["RW"] for mount in container.attrs["Mounts"]}
        assert mounts == {"/model": False, "/model/engines": True}
        write = container.exec_run(["python3", "-c", "open('/model/intruder', 'w')"])
        assert write.exit_code != 0 and b"Read-only file system" in write.output
        assert not (model_dir / "intruder").exists()
    finally:
        container.remove(force=True)


def _ready(client: object, container: object) -> bool:
    container.reload()  # type: ignore[attr-defined]
    if container.status == "exited":  # type: ignore[attr-defined]
        raise AssertionError(f"model container exited:\n{container.logs().decode()[-3000:]}")  # type: ignore[attr-defined]
    try:
        return bool(client.is_model_ready("dense", "7"))  # type: ignore[attr-defined]
    except Exception:  # connection refused while the server starts
        return False


def test_runtime_nvidia_is_used_only_when_the_daemon_offers_it(docker_engine: DockerEngine, tmp_path: Path) -> None:
    runtimes = daemon_runtimes(docker_engine.client.info())
    spec = ModelContainerSpec(image="x", name="m", version="1", model_dir=tmp_path, port=9000)
    assert "runc" in runtimes
    assert ("runtime" in run_options(spec, runtimes)) == ("nvidia" in runtimes)

"""OTA end to end with the process executor: real control plane, real agents, real model servers, real Traefik."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.backend.registry_helpers import dense_model, golden_pair, push
from tests.conftest import unique_id
from tests.ota.nodes import Node, admin, deploy, model_state, move_tag, wait_registered, wait_state
from tests.support.backend import BackendProcess, backend_server

FEATURES, OUTPUTS = 4, 3


@pytest.fixture(scope="module")
def ota_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    with backend_server(tmp_path_factory.mktemp("ota-backend")) as backend:
        yield backend


def reference(seed: int, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    from jetfleet.bench.testmodels import dense_reference

    return dense_reference(FEATURES, OUTPUTS, seed, 1.0, x)  # type: ignore[no-any-return]


def infer(endpoint: str, model: str, x: np.ndarray) -> tuple[str, np.ndarray]:  # type: ignore[type-arg]
    """One inference through tritonclient; returns (serving version, output)."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=endpoint.removeprefix("http://"), network_timeout=30)
    try:
        tensor = httpclient.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result = client.infer(model, [tensor])
        return str(result.get_response()["model_version"]), result.as_numpy("output")
    finally:
        client.close()


class Load:
    """A client sending inferences one after another (bounded in count and time), recording every answer."""

    def __init__(self, endpoint: str, model: str, max_requests: int = 50_000, max_seconds: float = 300) -> None:
        self.endpoint, self.model = endpoint, model
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(url=self.endpoint.removeprefix("http://"), network_timeout=30)
        x = np.ones((1, FEATURES), dtype=np.float32)
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and len(self.versions) + len(self.failures) < self.max_requests \
                    and time.monotonic() < deadline:
                tensor = httpclient.InferInput("input", [1, FEATURES], "FP32")
                tensor.set_data_from_numpy(x)
                try:
                    self.versions.append(str(client.infer(self.model, [tensor]).get_response()["model_version"]))
                except Exception as exc:  # any failed request counts
                    self.failures.append(repr(exc))
        finally:
            client.close()

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        alive = self._thread.is_alive()
        self._stop.set()
        self._thread.join(60)
        assert alive, "the load client stopped early (count or time bound reached): the test measured nothing"


def test_deploy_by_tag_swap_under_load_rollback_and_cleanup(ota_backend: BackendProcess, tmp_path: Path) -> None:
    model = unique_id("dense")
    nodes = [Node(tmp_path, ota_backend.url, unique_id(f"node{i}")).start() for i in range(2)]
    try:
        wait_registered(ota_backend, *nodes)
        push(ota_backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod",
             golden=golden_pair(tmp_path / "g1", seed=1))
        deploy(ota_backend, model, "prod", *(n.name for n in nodes))
        for node in nodes:
            state = wait_state(ota_backend, model, node.name, version=1, state="committed")
            assert state["endpoint"] == node.endpoint
        x = np.array([[0.5, -1.0, 2.0, 0.25]], dtype=np.float32)
        for node in nodes:
            version, y = infer(node.endpoint, model, x)
            assert version == "1" and np.allclose(y, reference(1, x), rtol=1e-5)

        # swap by tag while a client sends requests continuously
        push(ota_backend, model, dense_model(tmp_path / "v2.onnx", seed=2), golden=golden_pair(tmp_path / "g2", seed=2))
        with Load(nodes[0].endpoint, model) as load:
            wait_until_some(load, 20)
            move_tag(ota_backend, model, "prod", 2)
            for node in nodes:
                wait_state(ota_backend, model, node.name, version=2, state="committed", timeout=60)
            served_after = len(load.versions)
            wait_until_some(load, served_after + 20)
        assert load.failures == []
        assert load.versions[0] == "1" and load.versions[-1] == "2"
        first_v2 = load.versions.index("2")
        assert set(load.versions[first_v2:]) == {"2"}, "an answer from version 1 came after version 2 served"
        assert model_state(ota_backend, model, nodes[0].name)["last_known_good"] == 1  # type: ignore[index]
        version, y = infer(nodes[1].endpoint, model, x)
        assert version == "2" and np.allclose(y, reference(2, x), rtol=1e-5)

        # version 3 fails its golden check: rolled back, version 2 keeps serving
        push(ota_backend, model, dense_model(tmp_path / "v3.onnx", seed=3), golden=golden_pair(tmp_path / "g3", seed=2))
        move_tag(ota_backend, model, "prod", 3)
        for node in nodes:
            state = wait_state(ota_backend, model, node.name, state="rolled_back")
            assert (state["version"], state["reason"]) == (2, "HEALTH_ERROR/GOLDEN_MISMATCH")
            assert infer(node.endpoint, model, x)[0] == "2"
        assert "version 3" not in " ".join(_running_servers(nodes[0], model))

        # keep-3 cleanup: versions 4 and 5 roll out; 1 and 2 ... only the latest 3 (plus serving/LKG) stay
        for number in (4, 5):
            push(ota_backend, model, dense_model(tmp_path / f"v{number}.onnx", seed=number))
            move_tag(ota_backend, model, "prod", number)
            wait_state(ota_backend, model, nodes[0].name, version=number, state="committed")
        wait_for_disk(nodes[0], model, {"3", "4", "5"})
        assert (nodes[0].models_dir / model / "current").readlink() == Path("5")
    finally:
        for node in nodes:
            node.stop()
    assert not _running_servers(nodes[0], model), "model servers outlived their agent"


def wait_until_some(load: Load, count: int) -> None:
    from tests.support.processes import wait_until

    wait_until(lambda: len(load.versions) + len(load.failures) >= count or not load._thread.is_alive(), 30,
               what=f"{count} answers")


def wait_for_disk(node: Node, model: str, versions: set[str]) -> None:
    from tests.support.processes import wait_until

    wait_until(lambda: {p.name for p in (node.models_dir / model).iterdir() if p.name.isdigit()} == versions, 30,
               what=f"{model} versions {versions} on disk")


def _running_servers(node: Node, model: str) -> list[str]:
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "serve-model" in cmdline and f"--name {model}" in cmdline:
            found.append(cmdline.replace(" --version ", " version "))
    return found


def test_auto_update_off_reports_pending_and_undeploy_stops_serving(ota_backend: BackendProcess,
                                                                     tmp_path: Path) -> None:
    model = unique_id("dense")
    manual = Node(tmp_path, ota_backend.url, unique_id("manual"), auto_update=False).start()
    auto = Node(tmp_path, ota_backend.url, unique_id("auto")).start()
    try:
        wait_registered(ota_backend, manual, auto)
        push(ota_backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
        deploy(ota_backend, model, "prod", manual.name, auto.name)
        wait_state(ota_backend, model, auto.name, version=1, state="committed")
        state = wait_state(ota_backend, model, manual.name, state="notified")
        assert state["version"] is None and state["target_version"] == 1
        assert not (manual.models_dir / model).exists()
        with admin(ota_backend) as client:
            client.undeploy(model, [auto.name], all_devices=False)
        from tests.support.processes import wait_until

        wait_until(lambda: model_state(ota_backend, model, auto.name) is None, 30, what="model gone from status")
        assert not _running_servers(auto, model)
        assert (auto.models_dir / model / "1").is_dir()  # files kept for a quick redeploy
    finally:
        manual.stop()
        auto.stop()

"""Rotating the manifest signing key (docs/ota.md) with real control plane restarts and a real agent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.backend.registry_helpers import dense_model, push
from tests.conftest import unique_id
from tests.ota.nodes import Node, deploy, move_tag, wait_registered, wait_state
from tests.support.backend import backend_server
from tests.support.processes import jetfleet_cmd, subprocess_env, wait_until


def keygen(path: Path) -> tuple[str, str]:
    """``jetfleet backend keygen``; returns (key id, public key)."""
    result = subprocess.run(jetfleet_cmd("backend", "keygen", str(path)), capture_output=True, text=True,
                            env=subprocess_env(), timeout=60, check=True)
    first, public = result.stdout.strip().splitlines()
    return first.rsplit("key id ", 1)[1].rstrip(")"), public


def test_rotation_moves_devices_to_the_new_key_and_a_re_pin_recovers_a_straggler(tmp_path: Path) -> None:
    old_key, new_key = tmp_path / "old.key", tmp_path / "new.key"
    old_id, _ = keygen(old_key)
    new_id, new_public = keygen(new_key)
    model = unique_id("dense")
    with backend_server(tmp_path / "backend", extra_args=["--signing-key", str(old_key)]) as backend:
        online = Node(tmp_path, backend.url, unique_id("online")).start()
        straggler = Node(tmp_path, backend.url, unique_id("straggler")).start()
        try:
            wait_registered(backend, online, straggler)
            push(backend, model, dense_model(tmp_path / "v1.onnx", seed=1), tag="prod")
            deploy(backend, model, "prod", online.name, straggler.name)
            for node in (online, straggler):
                wait_state(backend, model, node.name, version=1, state="committed")
                wait_until(lambda n=node: backend.device(n.name)["manifest_keys"] == [old_id], 30,  # type: ignore[misc]
                           what="pinned to the old key")
            straggler.stop()  # offline through the whole rotation

            backend.stop()  # step 2: the new key signs, the old one announces it to devices that need it
            backend.extra_args = ["--signing-key", str(new_key), "--previous-signing-key", str(old_key)]
            backend.start()
            wait_until(lambda: backend.device(online.name)["manifest_keys"] == [new_id], 60, interval=0.2,
                       what="the online device moved to the new key")

            backend.stop()  # step 3: the old key is retired
            backend.extra_args = ["--signing-key", str(new_key)]
            backend.start()
            push(backend, model, dense_model(tmp_path / "v2.onnx", seed=2))
            move_tag(backend, model, "prod", 2)
            wait_state(backend, model, online.name, version=2, state="committed")

            straggler.start()  # it still trusts only the old key: refuses, keeps serving version 1
            state = wait_state(backend, model, straggler.name, reason="VERIFY_ERROR/UNKNOWN_KEY", version=1)
            assert (state["state"], state["target_version"]) == ("failed", 2)
            straggler.stop()  # the admin re-pins it to the new key
            straggler.config["manifest_public_key"] = new_public
            straggler.start()
            wait_state(backend, model, straggler.name, version=2, state="committed")
        finally:
            online.stop()
            straggler.stop()

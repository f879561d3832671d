"""The process executor's records when an agent died between writing a server's record and forking it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from jetfleet.agent.ota.runtime.process import ProcessRuntime


def pending_record(runtime: ProcessRuntime, argv: list[str]) -> Path:
    """What the process executor writes just before it forks a model server."""
    runtime.records.mkdir(parents=True, exist_ok=True)
    path = runtime.records / "dense-2.json"
    path.write_text(json.dumps({"name": "dense", "version": 2, "port": 40001, "argv": argv}))
    return path


def test_a_server_forked_by_an_agent_killed_before_recording_its_pid_is_found_and_stopped(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path / "ota")
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "serve-model", str(tmp_path)]
    orphan = subprocess.Popen(argv)
    try:
        path = pending_record(runtime, argv)
        [instance] = asyncio.run(runtime.instances())
        assert (instance.name, instance.version, instance.port) == ("dense", 2, 40001)
        assert instance.running and instance.ident == str(orphan.pid)
        assert json.loads(path.read_text())["pid"] == orphan.pid  # recorded now
        asyncio.run(runtime.stop(instance))  # what the planner does with a candidate nothing routes to
        assert orphan.wait(timeout=15) is not None and not path.exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_a_record_whose_server_was_never_forked_is_dropped(tmp_path: Path) -> None:
    runtime = ProcessRuntime(tmp_path / "ota")
    path = pending_record(runtime, [sys.executable, "-c", "pass", "serve-model", str(tmp_path / "never-started")])
    assert asyncio.run(runtime.instances()) == []
    assert not path.exists()

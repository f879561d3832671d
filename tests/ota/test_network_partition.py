"""A network partition of one node: the agent (process executor, real model server and node router) runs in a
network namespace the test creates, the control plane across a veth link; the link is cut and healed.

What the user sees: the node goes offline in the fleet, keeps answering inferences where it stands, keeps
running its job into the outbox, and comes back with every result exactly once, without a restart.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unique_id
from tests.jobs.test_jobs_e2e import create_job, exactly_once, serve_model, start_node, wait_results, write_rows
from tests.ota.nodes import Node
from tests.support.backend import backend_server
from tests.support.netns import NodeNetwork, node_network
from tests.support.processes import wait_until

pytestmark = pytest.mark.slow

# Inferences sent from inside the node's namespace (the test's own namespace cannot reach it while cut off).
_INFER = """
import json, sys, httpx
url, count = sys.argv[1], int(sys.argv[2])
body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
answered = 0
with httpx.Client(timeout=10) as client:
    for _ in range(count):
        try:
            answered += client.post(url, json=body).status_code == 200
        except httpx.HTTPError:
            pass
print(json.dumps({"answered": answered}))
"""


def infer_inside(net: NodeNetwork, node: Node, model: str, count: int) -> int:
    url = f"{node.endpoint}/v2/models/{model}/infer"
    done = subprocess.run(net.inside([sys.executable, "-c", _INFER, url, str(count)]), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["answered"])


def outbox_inputs(node: Node) -> set[str]:
    """The inputs whose results wait in the node's outbox (the test reads the agent's SQLite file)."""
    with sqlite3.connect(f"file:{Path(node.config['state_dir']) / 'jobs/outbox.sqlite3'}?mode=ro", uri=True) as db:
        return {json.loads(body)["input"] for (body,) in db.execute("SELECT body FROM outbox WHERE kind = 'result'")}


def test_a_partitioned_node_keeps_serving_and_loses_no_result(tmp_path: Path) -> None:
    with node_network() as net, backend_server(tmp_path / "control-plane", host=net.host_ip) as backend:
        node = start_node(tmp_path, backend.url, wrap=net.inside)  # its metrics port is inside the namespace
        try:
            model = serve_model(backend, tmp_path, node)
            folder = tmp_path / "inputs"
            job = unique_id("every")
            names = [f"f{i:02d}.npy" for i in range(8)]
            write_rows(folder, names[:2])
            create_job(backend, job, model, folder, node, schedule="every", every_seconds=1.0)
            wait_results(backend, job, 2)
            assert infer_inside(net, node, model, 5) == 5

            net.partition()
            wait_until(lambda: backend.device(node.name)["status"] == "offline", 60, interval=0.5,
                       what="the control plane seeing the node offline")
            assert infer_inside(net, node, model, 40) == 40  # serving where it stands
            write_rows(folder, names[2:], seed=1)
            wait_until(lambda: set(names[2:]) <= outbox_inputs(node), 60, interval=0.5,
                       what="the runs during the partition recording their results in the outbox")
            wait_until(lambda: "unreachable" in (node.dir / "agent.log").read_text(errors="replace"), 30,
                       what="the agent saying the control plane is unreachable")

            net.heal()
            wait_until(lambda: backend.device(node.name)["status"] == "online", 60, interval=0.5,
                       what="the node back online")
            exactly_once(wait_results(backend, job, len(names)), names)
            wait_until(lambda: not outbox_inputs(node), 60, interval=0.5, what="the outbox drained")
            assert node.process is not None and node.process.alive()  # rode it out, no restart
        finally:
            node.stop()

"""The README demo's gateway step, as the demo runs it: no command fails when a node is killed."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from jetfleet.bench.gateway_demo import DemoNode, run_gateway_demo
from tests.gateway.conftest import Node


def test_demo_kills_a_node_and_no_command_fails(traefik_bin: str, voice_nodes: dict[str, Node],
                                                tmp_path: Path) -> None:
    nodes = list(voice_nodes.values())
    by_name = voice_nodes
    console = Console(record=True, width=160)

    report = run_gateway_demo([DemoNode(n.name, n.url) for n in nodes], lambda name: by_name[name].kill9(),
                              tmp_path / "demo", rate=20, count=200, console=console)

    assert (report.sent, report.failed, report.killed) == (200, 0, "jetson-b")
    assert report.served["jetson-b"] > 0 and report.served_after_kill.get("jetson-b", 0) == 0
    assert sum(report.served.values()) == 200
    assert report.removed_after_s is not None and report.removed_after_s < 2.0
    assert "200 commands sent, 0 failed" in console.export_text()

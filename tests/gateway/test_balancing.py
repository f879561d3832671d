"""Load balancing across three voice nodes behind the real Traefik: how each strategy spreads commands."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from jetfleet.bench.load import closed_loop, failures, share_by_node
from tests.gateway.conftest import Gateway, Node, command, describe, voice_request


def _fleet(nodes: list[Node]) -> list[dict[str, Any]]:
    return [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes]


def test_wrr_spreads_commands_evenly(traefik_bin: str, voice_nodes: dict[str, Node], tmp_path: Path,
                                     cleanup: list[Any]) -> None:
    nodes = list(voice_nodes.values())
    gateway = Gateway.for_fleet(tmp_path / "gw", _fleet(nodes), strategy="wrr")
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file"])

    with httpx.Client(timeout=10) as client:
        answers = [client.post(gateway.url + "/api/voice/listen", json=command(i)) for i in range(90)]

    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:3]
    served = [a.json()["node"] for a in answers]
    assert {name: served.count(name) for name in set(served)} == {"jetson-a": 30, "jetson-b": 30, "jetson-c": 30}
    assert [a.json()["command"]["action"] for a in answers[:4]] == ["stand_up", "lie_down", "hello", "stop"]


def _throttle(pid: int, stop: threading.Event, paused: float = 0.15, running: float = 0.05) -> None:
    """Pause the process most of the time, like a throttled board (SIGSTOP/SIGCONT by PID)."""
    try:
        while not stop.is_set():
            os.kill(pid, signal.SIGSTOP)
            stop.wait(paused)
            os.kill(pid, signal.SIGCONT)
            stop.wait(running)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_leasttime_avoids_a_slowed_node(traefik_bin: str, voice_nodes: dict[str, Node], tmp_path: Path,
                                        cleanup: list[Any]) -> None:
    nodes = list(voice_nodes.values())  # jetson-c is slowed below
    gateway = Gateway.for_fleet(tmp_path / "gw", _fleet(nodes), strategy="leasttime", health_timeout="1s",
                                health_interval="2s")
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file"])
    slow = nodes[2].process
    assert slow is not None
    stop = threading.Event()
    throttler = threading.Thread(target=_throttle, args=(slow.pid, stop), daemon=True)
    throttler.start()
    try:
        outcomes, _ = asyncio.run(closed_loop(voice_request(gateway), concurrency=4, duration=8, max_requests=400))
    finally:
        stop.set()
        throttler.join(5)

    assert not failures(outcomes), describe(outcomes)
    shares = share_by_node(outcomes)
    total = sum(shares.values())
    assert total >= 50
    assert shares["jetson-c"] / total < 0.1, shares  # wrr would give it a third
    assert shares["jetson-a"] > 0 and shares["jetson-b"] > 0, shares


def test_sticky_cookie_and_hrw_keep_a_client_on_one_node(traefik_bin: str, voice_nodes: dict[str, Node],
                                                         tmp_path: Path, cleanup: list[Any]) -> None:
    nodes = list(voice_nodes.values())
    sticky = Gateway.for_fleet(tmp_path / "sticky", _fleet(nodes), strategy="wrr", sticky=True)
    hrw = Gateway.for_fleet(tmp_path / "hrw", _fleet(nodes), strategy="hrw")
    cleanup.extend([sticky, hrw])
    sticky.wait_ready(["voice@file"])
    hrw.wait_ready(["voice@file"])

    with httpx.Client(timeout=10) as client:  # keeps the cookie it is given
        first = client.post(sticky.url + "/api/voice/listen", json=command(0))
        assert "jetfleet_affinity" in first.headers["set-cookie"]
        pinned = {client.post(sticky.url + "/api/voice/listen", json=command(i)).json()["node"] for i in range(9)}
    assert pinned == {first.json()["node"]}
    # Without the cookie (a new client each time), the same gateway spreads the commands.
    spread = {httpx.post(sticky.url + "/api/voice/listen", json=command(i), timeout=10).json()["node"]
              for i in range(6)}
    assert spread == set(voice_nodes)
    with httpx.Client(timeout=10) as client:
        by_ip = {client.post(hrw.url + "/api/voice/listen", json=command(i)).json()["node"] for i in range(9)}
    assert len(by_ip) == 1  # one client address, one node

"""Nodes crash under a steady stream of commands: no client request fails, Traefik notices within a second.

The fleets here opt in to ``retry_in_flight: [voice]``: the stream's commands go to ``robot: none``
nodes, so re-running a command that was in flight on the crashed node is harmless. Requests that never
reached the dead node are retried by default (the passive check ejects it on the first failure, so the
retry cannot land on it again).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from jetfleet.bench.load import failures, share_by_node
from tests.gateway.conftest import Gateway, Node, Stream, command, describe, voice_request, wait_status

RATE = 50.0  # requests per second: a busy voice fleet, modest for a 2-core CI machine


def _served_by(gateway: Gateway, count: int) -> Counter[str]:
    """Who answers ``count`` sequential commands now."""
    with httpx.Client(timeout=30) as client:
        replies = [client.post(gateway.url + "/api/voice/listen", json=command(i)) for i in range(count)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200][:3]
    return Counter(r.json()["node"] for r in replies)


def test_sigkill_during_a_stream_of_1000_commands_loses_none(traefik_bin: str, voice_nodes: dict[str, Node],
                                                            tmp_path: Path, cleanup: list[Any]) -> None:
    nodes = list(voice_nodes.values())
    fleet = [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes]
    # A 500 ms probe keeps "removed within 1 s" true with a margin on a loaded machine (detection <= interval).
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet, strategy="wrr", health_interval="500ms",
                                health_timeout="400ms", retry_in_flight=["voice"])
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file"])
    victim = nodes[1]

    stream = Stream(voice_request(gateway), rate=RATE, count=1000)
    stream.sleep_until(4.0)
    victim.kill9()
    killed_at = stream.now()
    removed_after = wait_status(gateway, "voice@file", victim.url, "DOWN", timeout=10)
    # stay down a while whatever the detection took: the window below then always holds answered requests
    # (the passive check can eject the node within a few ms, and a window that short can hold none)
    stream.sleep_until(killed_at + 1.5)
    restart_began = stream.now()
    victim.start()  # under the stream; returns once the node answers /health (a voice server loads Whisper first)
    readded_after = wait_status(gateway, "voice@file", victim.url, "UP", timeout=10)
    outcomes = stream.join(120)

    assert len(outcomes) == 1000
    assert not failures(outcomes), describe(outcomes)
    assert removed_after < 1.0, f"removed {removed_after:.2f}s after the kill"
    assert readded_after < 1.0, f"re-added {readded_after:.2f}s after the restart"
    # While the victim's process did not exist it cannot have answered anything: judge by completion time, since
    # on a loaded machine a request can leave the client well after its scheduled send time.
    away = share_by_node(o for o in outcomes if o.sent_at > killed_at + 0.1 and o.sent_at + o.latency < restart_began)
    assert away["jetson-b"] == 0 and sum(away.values()) > 0, away
    back = _served_by(gateway, 30)
    assert set(back) == set(voice_nodes) and back["jetson-b"] >= 7, back  # back in the rotation


def test_failover_primary_killed_loses_nothing_and_traffic_returns(traefik_bin: str, voice_nodes: dict[str, Node],
                                                                   tmp_path: Path, cleanup: list[Any]) -> None:
    primary, backup = voice_nodes["jetson-a"], voice_nodes["jetson-b"]
    fleet = [{"name": primary.name, "url": primary.url, "roles": ["voice"]},
             {"name": backup.name, "url": backup.url, "roles": ["voice"], "backup": True}]
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet, retry_in_flight=["voice"])
    cleanup.append(gateway)
    gateway.wait_ready(["voice-primary@file", "voice-backup@file"])

    stream = Stream(voice_request(gateway), rate=RATE, count=600)
    stream.sleep_until(3.0)
    signalled_at = stream.now()
    primary.kill9()  # returns once the process is gone (freeing a loaded model takes a moment)
    killed_at = stream.now()
    wait_status(gateway, "voice-primary@file", primary.url, "DOWN", timeout=10)
    # Requests are stamped when the client starts them; under load they can reach Traefik later, so the
    # backup-only window ends when the restart begins, not when the new primary answers.
    restarting_at = stream.now()
    primary.start()
    wait_status(gateway, "voice-primary@file", primary.url, "UP", timeout=10)
    outcomes = stream.join(120)

    assert len(outcomes) == 600
    assert not failures(outcomes), describe(outcomes)
    before = share_by_node(o for o in outcomes if o.sent_at < signalled_at - 0.3)  # not in flight at the kill
    during = share_by_node(o for o in outcomes if killed_at + 0.1 < o.sent_at < restarting_at)
    assert set(before) == {"jetson-a"}, before  # the backup idles while the primary is up
    assert set(during) == {"jetson-b"}, during
    assert _served_by(gateway, 20) == {"jetson-a": 20}  # back on the primary

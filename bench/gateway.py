"""``jetfleet bench gateway``: what Traefik costs, how voice throughput scales, what a crash costs.

Three sections, each on loopback with real processes (numbers go into docs/benchmarks.md):

* ``overhead``: echo nodes answering at once and after 20 ms, direct vs through ``gateway run``:
  added p50/p99 latency (sequential requests) and the throughput ratio (wrk when installed, else httpx);
* ``audio``: audio transcription (``/v1/audio/transcriptions``, real Whisper) through the gateway with
  1, 2 and 3 voice nodes, each pinned to one core where the machine has them;
* ``failover``: the kill test's numbers: SIGKILL one of three nodes during 1000 commands at 50/s, with
  connection-only retries (the default) and with ``retry_in_flight``, a few runs each (in-flight losses are
  rare events); and a primary killed behind a backup.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from jetfleet.bench.gateway_procs import Gateway, Node, wrk, wrk_available
from jetfleet.bench.load import BackgroundStream, Request, closed_loop, failures, percentile, share_by_node
from jetfleet.bench.procs import jetfleet_argv
from jetfleet.gateway.traefik_api import parse_metrics

SECTIONS = ("overhead", "audio", "failover")
Argv = Callable[[int], list[str]]


def voice_available() -> bool:
    return importlib.util.find_spec("jetfleet.voice.launch") is not None


def echo_argv(name: str, delay_ms: float) -> Argv:
    return lambda port: [sys.executable, "-m", "jetfleet.bench.echo_node", "--port", str(port), "--name", name,
                         "--delay-ms", str(delay_ms)]


def voice_argv(name: str) -> Argv:
    return lambda port: jetfleet_argv("voice", "serve", "--robot", "none", "--host", "127.0.0.1", "--port", str(port),
                                      "--node-name", name, "--workers", "1", "--cpu-threads", "1")


def run_bench(sections: Iterable[str], workdir: Path, *, duration: float, audio_seconds: float,
              kill_runs: int = 3) -> dict[str, Any]:
    result: dict[str, Any] = {"cpu cores": os.cpu_count(), "load generator": "wrk" if wrk_available() else "httpx"}
    chosen = set(sections)
    if "overhead" in chosen:
        result.update(overhead(workdir / "overhead", duration))
    if "audio" in chosen:
        result.update(audio_scaling(workdir / "audio", audio_seconds) if voice_available()
                      else {"audio": "skipped: the voice service is not in this checkout"})
    if "failover" in chosen:
        result.update(kill_numbers(workdir / "kill", kill_runs))
        result.update(failover_numbers(workdir / "failover"))
    return result


def _started(nodes: list[Node]) -> list[Node]:
    try:
        for node in nodes:  # one at a time: starting Python processes is CPU-bound
            node.start()
    except BaseException:
        _stop(nodes)
        raise
    return nodes


def _stop(*things: Any) -> None:
    for thing in reversed(things):
        if isinstance(thing, list):
            _stop(*thing)
        elif thing is not None:
            thing.stop()


# -- overhead ------------------------------------------------------------------------------------------

def overhead(workdir: Path, duration: float) -> dict[str, Any]:
    nodes = _started([Node(workdir, "trivial", echo_argv("trivial", 0)),
                      Node(workdir, "sleep20", echo_argv("sleep20", 20))])
    gateway = None
    try:
        gateway = Gateway(workdir / "gw", [{"name": n.name, "url": n.url, "roles": [n.name]} for n in nodes],
                          strategy="wrr")
        for node in nodes:
            gateway.wait_up(f"model-{node.name}@file", 1)
        result: dict[str, Any] = {}
        for node, label, sequential in ((nodes[0], "trivial", 1000), (nodes[1], "20 ms", 200)):
            path = f"/v2/models/{node.name}/infer"
            result.update(_compare(label, node.url + path, gateway.url + path, sequential, duration))
        return result
    finally:
        _stop(nodes, gateway)


def _compare(label: str, direct: str, via: str, sequential: int, duration: float) -> dict[str, Any]:
    lat_direct, lat_via = _sequential_latency(direct, via, sequential)
    rounds = [(_throughput(direct, duration), _throughput(via, duration)) for _ in range(2)]
    rps_direct = max(r[0] for r in rounds)
    rps_via = max(r[1] for r in rounds)
    return {
        f"{label}: p50 direct / via Traefik (ms, sequential)": f"{lat_direct[0]:.2f} / {lat_via[0]:.2f}",
        f"{label}: p99 direct / via Traefik (ms, sequential)": f"{lat_direct[1]:.2f} / {lat_via[1]:.2f}",
        f"{label}: added p50 / p99 (ms)": f"{lat_via[0] - lat_direct[0]:+.2f} / {lat_via[1] - lat_direct[1]:+.2f}",
        f"{label}: req/s direct / via Traefik (8 connections)": f"{rps_direct:.0f} / {rps_via:.0f}",
        f"{label}: throughput ratio": round(rps_via / rps_direct, 2),
    }


def _sequential_latency(direct: str, via: str, count: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """p50/p99 (ms) of ``count`` one-at-a-time requests each way, interleaved in blocks against drift."""
    samples: dict[str, list[float]] = {direct: [], via: []}
    with httpx.Client(timeout=10) as client:
        for url in (direct, via):
            client.get(url)  # open the keep-alive connection
        for _ in range(10):
            for url in (direct, via):
                for _ in range(count // 10):
                    started = time.perf_counter()
                    client.get(url).raise_for_status()
                    samples[url].append((time.perf_counter() - started) * 1000)
    return ((percentile(samples[direct], 50), percentile(samples[direct], 99)),
            (percentile(samples[via], 50), percentile(samples[via], 99)))


def _throughput(url: str, duration: float) -> float:
    if wrk_available():
        return wrk(url, connections=8, seconds=duration)["rps"]
    outcomes, elapsed = asyncio.run(closed_loop(Request("GET", url), concurrency=8, duration=duration))
    return sum(1 for o in outcomes if o.ok) / elapsed


# -- audio scaling -------------------------------------------------------------------------------------

def audio_scaling(workdir: Path, seconds: float) -> dict[str, Any]:
    from jetfleet.voice.synth import synthesize

    workdir.mkdir(parents=True, exist_ok=True)
    clip = synthesize("sta op", "nl", workdir / "sta-op.wav")
    cpus = sorted(os.sched_getaffinity(0))
    result: dict[str, Any] = {}
    rates: dict[int, float] = {}
    for count in (1, 2, 3):
        rate, p50, text = _transcription_rate(workdir / f"{count}-nodes", count, cpus, clip.read_bytes(), seconds)
        rates[count] = rate
        pins = ", ".join(str(cpus[i % len(cpus)]) for i in range(count))
        result[f"audio, {count} node(s) on core(s) {pins}: transcriptions/s, p50 ms"] = f"{rate:.2f}, {p50:.0f}"
        result.setdefault("audio transcript", text)
    result["audio speed-up 2 nodes / 1"] = round(rates[2] / rates[1], 2)
    result["audio speed-up 3 nodes / 1"] = round(rates[3] / rates[1], 2)
    return result


def _transcription_rate(workdir: Path, count: int, cpus: list[int], audio: bytes,
                        seconds: float) -> tuple[float, float, str]:
    nodes: list[Node] = []
    gateway = None
    try:
        nodes = _started([Node(workdir, f"voice-{i}", voice_argv(f"voice-{i}"), cpus[i % len(cpus)])
                          for i in range(count)])
        gateway = Gateway(workdir / "gw", [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes],
                          response_timeout="120s")
        gateway.wait_up("voice@file", count)
        url = gateway.url + "/v1/audio/transcriptions"
        files = {"file": ("sta-op.wav", audio, "audio/wav")}
        with httpx.Client(timeout=120) as client:
            warm = [client.post(url, files=files) for _ in range(2 * count)]
        text = warm[-1].json().get("text", "") if warm[-1].status_code == 200 else f"HTTP {warm[-1].status_code}"
        request = Request("POST", url, files=lambda _i: files)
        outcomes, elapsed = asyncio.run(closed_loop(request, concurrency=2 * count, duration=seconds, timeout=120))
        ok = [o for o in outcomes if o.ok]
        return len(ok) / elapsed, percentile([o.latency * 1000 for o in ok], 50), text
    finally:
        _stop(nodes, gateway)


# -- failover ------------------------------------------------------------------------------------------

def _node_argv(name: str) -> Argv:
    return voice_argv(name) if voice_available() else echo_argv(name, 5)


def _commands(index: int) -> dict[str, str]:
    return {"command": ("sta op", "ga liggen", "hallo", "stop")[index % 4]}


def kill_numbers(workdir: Path, runs: int) -> dict[str, Any]:
    kind = "voice (text commands)" if voice_available() else "echo (5 ms)"
    result: dict[str, Any] = {"kill test": f"3 x {kind}, wrr, health_interval 1s, 50 commands/s x 1000, "
                                           f"SIGKILL at 4 s, restart at 10 s; {runs} runs each"}
    nodes: list[Node] = []
    try:
        nodes = _started([Node(workdir, f"jetson-{c}", _node_argv(f"jetson-{c}")) for c in "abc"])
        for label, in_flight in (("connect-only retry (default)", []), ("retry_in_flight=voice", ["voice"])):
            rows = [_kill_once(workdir / f"{label.split()[0]}-{run}", nodes, in_flight) for run in range(runs)]
            for metric in rows[0]:
                result[f"kill, {label}: {metric}"] = ", ".join(row[metric] for row in rows)
        return result
    finally:
        _stop(nodes)


def _kill_once(workdir: Path, nodes: list[Node], in_flight: list[str]) -> dict[str, str]:
    gateway = Gateway(workdir, [{"name": n.name, "url": n.url, "roles": ["voice"]} for n in nodes],
                      strategy="wrr", retry_in_flight=in_flight)
    try:
        gateway.wait_up("voice@file", 3)
        victim = nodes[1]
        stream = BackgroundStream(Request("POST", gateway.url + "/api/voice/listen", json=_commands), rate=50,
                                  count=1000)
        stream.sleep_until(4.0)
        victim.kill9()
        removed = gateway.seconds_until("voice@file", victim.url, "DOWN")
        stream.sleep_until(10.0)
        victim.start()
        readded = gateway.seconds_until("voice@file", victim.url, "UP")
        outcomes = stream.join(120)
        traffic = parse_metrics(httpx.get(gateway.metrics, timeout=5).text)
        retries = traffic.services["voice@file"].requests - traffic.routers["voice@file"].requests
        return {"failed / 1000": str(len(failures(outcomes))),
                "removed (API DOWN) after kill, s": _seconds(removed),
                "re-added (API UP) after restart, s": _seconds(readded),
                "retried attempts": str(int(retries))}
    finally:
        gateway.stop()


def failover_numbers(workdir: Path) -> dict[str, Any]:
    nodes: list[Node] = []
    gateway = None
    try:
        nodes = _started([Node(workdir, name, _node_argv(name)) for name in ("primary", "backup")])
        gateway = Gateway(workdir / "gw", [{"name": "primary", "url": nodes[0].url, "roles": ["voice"]},
                                           {"name": "backup", "url": nodes[1].url, "roles": ["voice"],
                                            "backup": True}], retry_in_flight=["voice"])
        gateway.wait_up("voice-primary@file", 1)
        gateway.wait_up("voice-backup@file", 1)
        stream = BackgroundStream(Request("POST", gateway.url + "/api/voice/listen", json=_commands), rate=50,
                                  count=1000)
        stream.sleep_until(3.0)
        signalled = stream.now()
        nodes[0].kill9()
        nodes[0].start()  # at once: a voice server needs seconds to load Whisper again
        ready = stream.now()
        outcomes = stream.join(120)
        on_backup = [o.sent_at for o in outcomes if o.node == "backup" and o.sent_at >= signalled]
        back = [o.sent_at for o in outcomes if o.node == "primary" and o.sent_at > ready]
        return {"failover (primary killed at 3 s and restarted, 50/s x 1000): failed": len(failures(outcomes)),
                "failover: first request on the backup after the kill, s": _seconds(min(on_backup) - signalled
                                                                                     if on_backup else None),
                "failover: primary down (kill to /health answering again), s": _seconds(ready - signalled),
                "failover: back on the primary after it answered /health, s": _seconds(min(back) - ready
                                                                                       if back else None),
                "failover: served by primary / backup": str(dict(share_by_node(outcomes)))}
    finally:
        _stop(nodes, gateway)


def _seconds(value: float | None) -> str:
    return "not seen" if value is None else f"{value:.2f}"

"""``jetfleet bench voice``: the voice server's cost over raw faster-whisper, text-command latency,
throughput under concurrency, and memory. Numbers go into docs/benchmarks.md ("Voice").

1. A 2.0 s clip ("loop vooruit", espeak-ng + SoX, padded with silence to exactly 2 s) is transcribed
   ``--rounds`` times by raw faster-whisper in this process, with the service's decoding settings.
2. A real server (``jetfleet voice serve --robot none``) is started on 127.0.0.1 and the same clip is
   sent ``--rounds`` times over HTTP (multipart), one at a time; then text commands; then batches at
   each concurrency level. Its peak RSS is read from /proc.
"""

from __future__ import annotations

import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from jetfleet.errors import PermanentError

CLIP_SECONDS = 2.0


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "n": len(ms)}


def make_clip(text: str, language: str, directory: Path) -> bytes:
    """Synthesized speech padded (or cut) to exactly CLIP_SECONDS, as 16 kHz mono WAV."""
    from voice.audio import AudioLimits, decode_audio
    from voice.synth import synthesize

    spoken = synthesize(text, language, directory / "clip.wav")
    samples = decode_audio(spoken.read_bytes(), AudioLimits()).samples
    total = int(CLIP_SECONDS * 16000)
    padded = np.zeros(total, dtype=np.float32)
    start = max(0, (total - len(samples)) // 2)
    padded[start:start + min(len(samples), total)] = samples[:total]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def bench_raw(model_dir: Path, clip: bytes, language: str, rounds: int, threads: int) -> dict[str, Any]:
    """faster-whisper alone, in this process: decode the WAV bytes and transcribe, as the service does."""
    from faster_whisper import WhisperModel

    from voice.grammar import hotwords

    model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
    times: list[float] = []
    text = ""
    for index in range(rounds + 1):
        started = time.monotonic()
        segments, _ = model.transcribe(io.BytesIO(clip), language=language, beam_size=5, temperature=0.0,
                                       condition_on_previous_text=False, hotwords=hotwords(language))
        text = "".join(s.text for s in segments).strip()
        if index:  # the first call in a process is slower: warm-up
            times.append(time.monotonic() - started)
    del model
    return {"latency_ms": _percentiles(times), "transcript": text}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.monotonic()
    reply = call()
    if reply.status_code != 200:
        raise PermanentError(f"benchmark request failed: {reply.status_code} {reply.text[:200]}")
    return time.monotonic() - started


def _peak_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(psutil.Process(pid).memory_info().rss)


def bench_server(url: str, pid: int, clip: bytes, language: str, rounds: int,
                 levels: list[int]) -> dict[str, Any]:
    http = httpx.Client(base_url=url, timeout=300)

    def audio() -> httpx.Response:
        return http.post("/api/voice/listen", files={"audio": ("clip.wav", clip)}, data={"language": language})

    def text() -> httpx.Response:
        return http.post("/api/voice/listen", json={"command": "sta op"})

    for _ in range(2):
        _timed(audio)
    audio_times = [_timed(audio) for _ in range(rounds)]
    text_times = [_timed(text) for _ in range(max(rounds, 50))]
    throughput = {}
    for level in levels:
        count = max(8, 2 * level)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=level) as pool:
            list(pool.map(lambda _: _timed(audio), range(count)))
        throughput[str(level)] = round(count / (time.monotonic() - started), 3)
    status = http.get("/api/voice/status").json()
    http.close()
    return {"audio_latency_ms": _percentiles(audio_times), "text_latency_ms": _percentiles(text_times),
            "throughput_rps": throughput, "server_rss_bytes": int(psutil.Process(pid).memory_info().rss),
            "server_peak_rss_bytes": _peak_rss_bytes(pid), "server_status": status}


def run_benchmark(*, rounds: int, levels: list[int], cache_dir: Path, language: str, threads: int) -> dict[str, Any]:
    from voice.models import WHISPER_BASE, ensure_packaged

    model_dir = ensure_packaged(WHISPER_BASE, cache_dir).path
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-voice-") as tmp:
        clip = make_clip("loop vooruit", language, Path(tmp))
        load_before = os.getloadavg()
        raw = bench_raw(model_dir, clip, language, rounds, threads)
        port = _free_port()
        argv = [sys.executable, "-m", "jetfleet", "voice", "serve", "--robot", "none", "--host", "127.0.0.1",
                "--port", str(port), "--cache-dir", str(cache_dir), "--language", language, "--max-queue", "64",
                "--cpu-threads", str(threads), "--log-level", "warning"]
        with open(Path(tmp) / "server.log", "wb") as log:
            server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_healthy(f"http://127.0.0.1:{port}", server, Path(tmp) / "server.log")
                served = bench_server(f"http://127.0.0.1:{port}", server.pid, clip, language, rounds, levels)
            finally:
                server.terminate()
                server.wait(30)
    raw_p50 = raw["latency_ms"]["p50"]
    http_p50 = served["audio_latency_ms"]["p50"]
    return {"clip_seconds": CLIP_SECONDS, "rounds": rounds, "cpu_threads": threads, "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before], "raw": raw, **served,
            "overhead_p50_ratio": round((http_p50 - raw_p50) / raw_p50, 4)}


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise PermanentError(f"the voice server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise PermanentError(f"the voice server was not healthy within {timeout:g} s")


def markdown(result: dict[str, Any]) -> str:
    raw, audio, text = result["raw"]["latency_ms"], result["audio_latency_ms"], result["text_latency_ms"]
    mib = 1024 * 1024
    rows = [
        "| what | p50 | p95 |", "|---|---|---|",
        f"| raw faster-whisper, 2 s clip (in process) | {raw['p50']:.0f} ms | {raw['p95']:.0f} ms |",
        f"| HTTP `POST /api/voice/listen`, same clip | {audio['p50']:.0f} ms | {audio['p95']:.0f} ms |",
        f"| HTTP text command (`sta op`) | {text['p50']:.1f} ms | {text['p95']:.1f} ms |",
        "", f"Service overhead at p50: {result['overhead_p50_ratio'] * 100:+.1f} % (goal <= 10 %).",
        "", "| concurrency | throughput |", "|---|---|",
        *[f"| {level} | {rps:.2f} clips/s |" for level, rps in result["throughput_rps"].items()],
        "", f"Server RSS after the run: {result['server_rss_bytes'] / mib:.0f} MiB (peak"
            f" {result['server_peak_rss_bytes'] / mib:.0f} MiB). {result['rounds']} rounds,"
            f" {result['cpu_threads']} CPU threads, load average before: {result['load_average_before']}.",
    ]
    return "\n".join(rows)


def print_result(result: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(result, indent=2) if as_json else markdown(result))

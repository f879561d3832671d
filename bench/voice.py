"""``jetfleet bench voice``: the voice server's cost over raw faster-whisper, text-command latency,
throughput under concurrency, and memory. Numbers go into docs/benchmarks.md ("Voice").

A 2.0 s clip ("loop vooruit", espeak-ng + SoX, padded with silence to exactly 2 s) is transcribed
``--rounds`` times by raw faster-whisper in this process (the service's decoding settings) and sent as
many times to a real server (``jetfleet voice serve --robot none`` on 127.0.0.1) over HTTP, the two
alternating one call at a time so that both see the same background load. Then text commands, then
batches at each concurrency level. The server's peak RSS is read from /proc.
"""

from __future__ import annotations

import io
import json
import os
import statistics
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

from jetfleet.bench.procs import ManagedProcess, free_port, jetfleet_argv
from jetfleet.errors import PermanentError

CLIP_SECONDS = 2.0


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "n": len(ms)}


def make_clip(text: str, language: str, directory: Path) -> bytes:
    """Synthesized speech padded (or cut) to exactly CLIP_SECONDS, as 16 kHz mono WAV."""
    from jetfleet.voice.audio import AudioLimits, decode_audio
    from jetfleet.voice.synth import synthesize

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


class RawWhisper:
    """faster-whisper alone, in this process: decode the WAV bytes and transcribe, as the service does."""

    def __init__(self, model_dir: Path, language: str, threads: int) -> None:
        from faster_whisper import WhisperModel

        from jetfleet.voice.grammar import hotwords

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self._language, self._hotwords = language, hotwords(language)
        self.transcript = ""

    def __call__(self, clip: bytes) -> float:
        started = time.monotonic()
        segments, _ = self._model.transcribe(io.BytesIO(clip), language=self._language, beam_size=5,
                                             temperature=0.0, condition_on_previous_text=False,
                                             hotwords=self._hotwords)
        self.transcript = "".join(s.text for s in segments).strip()
        return time.monotonic() - started



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


def bench_served(http: httpx.Client, raw: RawWhisper, clip: bytes, stand_up_clip: bytes, language: str, rounds: int,
                 levels: list[int]) -> dict[str, Any]:
    """Raw and HTTP calls alternate, one at a time, so that both see the same background load."""

    def audio() -> httpx.Response:
        return http.post("/api/voice/listen", files={"audio": ("clip.wav", clip)}, data={"language": language})

    def text() -> httpx.Response:
        return http.post("/api/voice/listen", json={"command": "sta op"})

    for _ in range(2):  # the first calls in a process are slower
        raw(clip)
        _timed(audio)
    raw_times, audio_times = [], []
    for _ in range(rounds):
        raw_times.append(raw(clip))
        audio_times.append(_timed(audio))
    text_times = [_timed(text) for _ in range(max(rounds, 50))]
    # "sta op" also runs the acoustic stop/"sta op" check (one more encoder pass and 16 alignments).
    checked_times = [_timed(lambda: http.post("/api/voice/listen", files={"audio": ("s.wav", stand_up_clip)},
                                              data={"language": language})) for _ in range(max(3, rounds // 2))]
    throughput = {}
    for level in levels:
        count = max(8, 2 * level)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=level) as pool:
            list(pool.map(lambda _: _timed(audio), range(count)))
        throughput[str(level)] = round(count / (time.monotonic() - started), 3)
    last = http.post("/api/voice/listen", files={"audio": ("clip.wav", clip)}, data={"language": language}).json()
    return {"raw": {"latency_ms": _percentiles(raw_times), "transcript": raw.transcript},
            "audio_latency_ms": _percentiles(audio_times), "served_transcript": last["transcript"],
            "served_action": (last.get("command") or {}).get("action"),
            "text_latency_ms": _percentiles(text_times), "stand_up_checked_latency_ms": _percentiles(checked_times),
            "throughput_rps": throughput}


def run_benchmark(*, rounds: int, levels: list[int], cache_dir: Path, language: str, threads: int) -> dict[str, Any]:
    from jetfleet.voice.models import WHISPER_BASE, ensure_packaged

    model_dir = ensure_packaged(WHISPER_BASE, cache_dir).path
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-voice-") as tmp:
        clip = make_clip("loop vooruit", language, Path(tmp))
        stand_up_clip = make_clip("sta op" if language == "nl" else "stand up", language, Path(tmp))
        port = free_port()
        argv = jetfleet_argv("voice", "serve", "--robot", "none", "--host", "127.0.0.1", "--port", str(port),
                             "--cache-dir", str(cache_dir), "--language", language, "--max-queue", "64",
                             "--cpu-threads", str(threads), "--log-level", "warning")
        server = ManagedProcess(argv, Path(tmp) / "server.log")
        try:
            url = f"http://127.0.0.1:{port}"
            server.wait_http(f"{url}/health", timeout=300, interval=0.2)
            raw = RawWhisper(model_dir, language, threads)
            with httpx.Client(base_url=url, timeout=300) as http:
                result = bench_served(http, raw, clip, stand_up_clip, language, rounds, levels)
            result["server_rss_bytes"] = int(psutil.Process(server.pid).memory_info().rss)
            result["server_peak_rss_bytes"] = _peak_rss_bytes(server.pid)
        finally:
            server.stop(30)
    raw_p50, http_p50 = result["raw"]["latency_ms"]["p50"], result["audio_latency_ms"]["p50"]
    return {"clip_seconds": CLIP_SECONDS, "rounds": rounds, "cpu_threads": threads, "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], **result,
            "overhead_p50_ratio": round((http_p50 - raw_p50) / raw_p50, 4)}


def markdown(result: dict[str, Any]) -> str:
    raw, audio, text = result["raw"]["latency_ms"], result["audio_latency_ms"], result["text_latency_ms"]
    checked = result["stand_up_checked_latency_ms"]
    mib = 1024 * 1024
    rows = [
        "| what | p50 | p95 |", "|---|---|---|",
        f"| raw faster-whisper, 2 s clip (in process) | {raw['p50']:.0f} ms | {raw['p95']:.0f} ms |",
        f"| HTTP `POST /api/voice/listen`, same clip | {audio['p50']:.0f} ms | {audio['p95']:.0f} ms |",
        f"| HTTP text command (`sta op`) | {text['p50']:.1f} ms | {text['p95']:.1f} ms |",
        f"| HTTP spoken `sta op` (+ acoustic stop check) | {checked['p50']:.0f} ms | {checked['p95']:.0f} ms |",
        "", f"Service overhead at p50: {result['overhead_p50_ratio'] * 100:+.1f} % (goal <= 10 %).",
        "", "| concurrency | throughput |", "|---|---|",
        *[f"| {level} | {rps:.2f} clips/s |" for level, rps in result["throughput_rps"].items()],
        "", f"Server RSS after the run: {result['server_rss_bytes'] / mib:.0f} MiB (peak"
            f" {result['server_peak_rss_bytes'] / mib:.0f} MiB). {result['rounds']} rounds,"
            f" {result['cpu_threads']} CPU threads, load average before/after: {result['load_average_before']}"
            f" / {result['load_average_after']}.",
    ]
    return "\n".join(rows)


def print_result(result: dict[str, Any], as_json: bool) -> None:
    print(json.dumps(result, indent=2) if as_json else markdown(result))

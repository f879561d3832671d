"""Real speech through the real model: espeak-ng clips in both languages, the stop / sta op hazard, other
formats, the OpenAI-compatible endpoint (with the openai client), and concurrent requests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.processes import free_port, managed, wait_until

from .audio_files import silence, tone, transcode
from .conftest import START_TIMEOUT, VoiceServer, serve_cmd

ENGLISH = [("stand up", "stand_up"), ("sit down", "sit"), ("lie down", "lie_down"), ("walk forward", "walk_forward"),
           ("walk backward", "walk_backward"), ("turn left", "turn_left"), ("turn right", "turn_right"),
           ("stop", "stop"), ("emergency stop", "emergency_stop"), ("hello", "hello"), ("wave", "hello"),
           ("stretch", "stretch")]
# The Dutch clips Whisper base gets right with the vocabulary bias (docs/voice.md); "ga zitten" and "zwaai"
# are misheard from espeak-ng ("ga meten", "maai") and left out.
DUTCH = [("sta op", "stand_up"), ("ga liggen", "lie_down"), ("loop vooruit", "walk_forward"),
         ("loop achteruit", "walk_backward"), ("draai naar links", "turn_left"), ("draai naar rechts", "turn_right"),
         ("stop", "stop"), ("noodstop", "emergency_stop"), ("hallo", "hello"), ("rek uit", "stretch")]
# Spoken "stop" (espeak voice, words per minute, padding) that the vocabulary-biased decoder transcribed
# as "sta op" in measurements: only the acoustic check stands between these and stand_up.
RISKY_STOPS = [("nl", 110, 0.0), ("nl", 130, 0.0), ("nl+m3", 110, 0.0), ("nl+m3", 130, 0.0), ("nl+m3", 130, 0.4),
               ("nl+m3", 175, 0.0), ("nl+klatt", 110, 0.0), ("nl+klatt", 110, 0.4), ("nl+klatt", 175, 0.4)]


def send_clip(server: VoiceServer, path: Path | bytes, language: str | None = None) -> httpx.Response:
    data = path.read_bytes() if isinstance(path, Path) else path
    fields = {"language": language} if language else None
    return httpx.post(f"{server.url}/api/voice/listen", files={"audio": ("clip.wav", data)}, data=fields,
                      timeout=120)


@pytest.mark.parametrize(("text", "action"), ENGLISH)
def test_english_speech(voice_server: VoiceServer, clip: Callable[..., Path], text: str, action: str) -> None:
    body = send_clip(voice_server, clip(text, "en"), language="en").json()
    assert body["command"] is not None and body["command"]["action"] == action, body
    assert body["status"] == "ok" and body["timings_ms"]["stt"] > 0


@pytest.mark.parametrize(("text", "action"), DUTCH)
def test_dutch_speech(voice_server: VoiceServer, clip: Callable[..., Path], text: str, action: str) -> None:
    body = send_clip(voice_server, clip(text, "nl")).json()  # the server's language: nl-NL
    assert body["command"] is not None and body["command"]["action"] == action, body


@pytest.mark.parametrize(("voice", "speed", "pad_s"), RISKY_STOPS)
def test_spoken_stop_never_stands_up(voice_server: VoiceServer, clip: Callable[..., Path], voice: str, speed: int,
                                     pad_s: float) -> None:
    body = send_clip(voice_server, clip("stop", "nl", voice=voice, speed=speed, pad_s=pad_s)).json()
    action = body["command"]["action"] if body["command"] else None
    assert action != "stand_up", body
    assert action in ("stop", "emergency_stop", None), body


def test_english_stop_is_stop(voice_server: VoiceServer, clip: Callable[..., Path]) -> None:
    body = send_clip(voice_server, clip("stop", "en", speed=175, pad_s=0.0), language="en").json()
    assert body["command"]["action"] == "stop", body


@pytest.mark.parametrize(("container", "codec", "rate"), [("mp3", "mp3", 44100), ("ogg", "libopus", 48000)])
def test_compressed_stereo_uploads(voice_server: VoiceServer, clip: Callable[..., Path], container: str, codec: str,
                                   rate: int) -> None:
    data = transcode(clip("turn left", "en"), container, codec, rate)
    body = send_clip(voice_server, data, language="en").json()
    assert body["command"] and body["command"]["action"] == "turn_left", body


@pytest.fixture(scope="module")
def openai_client(voice_server: VoiceServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{voice_server.url}/v1", api_key="not-needed", max_retries=0, timeout=120)


def test_openai_client_transcribes(openai_client: openai.OpenAI, clip: Callable[..., Path]) -> None:
    with clip("walk forward", "en").open("rb") as audio:
        result = openai_client.audio.transcriptions.create(model="whisper-1", file=audio, language="en")
    assert "walk forward" in result.text.lower()


def test_openai_text_and_verbose_formats(openai_client: openai.OpenAI, clip: Callable[..., Path]) -> None:
    path = clip("loop vooruit", "nl")
    with path.open("rb") as audio:
        text = openai_client.audio.transcriptions.create(model="whisper-1", file=audio, language="nl",
                                                         response_format="text",
                                                         prompt="Robotcommando's: sta op, loop vooruit, stop.")
    assert isinstance(text, str) and text.strip()
    with path.open("rb") as audio:
        verbose = openai_client.audio.transcriptions.create(model="whisper-1", file=audio, language="nl",
                                                            response_format="verbose_json")
    assert verbose.language == "nl" and 1.5 < verbose.duration < 3.5
    assert verbose.segments and verbose.segments[0].end > verbose.segments[0].start
    assert verbose.text == "".join(s.text for s in verbose.segments).strip()


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "verbose_json", "vtt"])
def test_openai_client_accepts_every_response_format(openai_client: openai.OpenAI, clip: Callable[..., Path],
                                                     response_format: str) -> None:
    """Every response_format OpenAI's API defines works through the official client."""
    with clip("walk forward", "en").open("rb") as audio:
        result = openai_client.audio.transcriptions.create(model="whisper-1", file=audio, language="en",
                                                           response_format=response_format)  # type: ignore[call-overload]
    text = result if isinstance(result, str) else result.text
    assert "walk forward" in text.lower(), text
    if response_format == "srt":
        assert re.match(r"^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n", text), text
    if response_format == "vtt":
        assert re.match(r"^WEBVTT\n\n00:00:\d\d\.\d{3} --> 00:00:\d\d\.\d{3}\n", text), text


def test_openai_errors_are_openai_shaped(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="silent"):
        openai_client.audio.transcriptions.create(model="whisper-1", file=("quiet.wav", silence(1.0)))
    with pytest.raises(openai.APIStatusError, match="longer than the limit") as err:
        openai_client.audio.transcriptions.create(model="whisper-1", file=("long.wav", tone(11.0)))
    assert err.value.status_code == 413
    models = openai_client.models.list()
    assert [m.id for m in models.data] == ["base"]


def _answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def _post_all(url: str, data: bytes, count: int) -> list[httpx.Response]:
    def one(_: int) -> httpx.Response:
        return httpx.post(f"{url}/api/voice/listen", files={"audio": ("c.wav", data)}, data={"language": "en"},
                          timeout=300)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


class _StatusSampler(threading.Thread):
    """Polls /api/voice/status while requests run (bounded by a deadline)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[dict[str, Any]] = []
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while not self.done.is_set() and time.monotonic() < deadline:
            self.samples.append(httpx.get(f"{self.url}/api/voice/status", timeout=10).json())
            self.done.wait(0.1)


def test_eight_simultaneous_audio_requests_are_all_answered(voice_server: VoiceServer,
                                                            clip: Callable[..., Path]) -> None:
    sampler = _StatusSampler(voice_server.url)
    sampler.start()
    replies = _post_all(voice_server.url, clip("turn right", "en").read_bytes(), 8)
    sampler.done.set()
    sampler.join()
    assert [r.status_code for r in replies] == [200] * 8
    assert all(r.json()["command"]["action"] == "turn_right" for r in replies)
    assert max(s["in_flight"] for s in sampler.samples) <= 1  # one worker by default
    assert max(s["queue_depth"] for s in sampler.samples) >= 1  # they really were queued


def test_beyond_the_queue_bound_requests_get_503_with_retry_after(tmp_path: Path, clip: Callable[..., Path]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = serve_cmd(port, "--language", "en-US", "--max-queue", "2", node="busy-node")
    with managed(argv, tmp_path / "busy.log") as server:
        first = wait_until(lambda: _answer(f"{url}/health"), START_TIMEOUT, what="the server answering")
        assert isinstance(first, httpx.Response) and first.status_code == 503  # still loading the model
        assert first.json()["status"] == "loading" and first.json()["node"] == "busy-node"
        server.wait_http(f"{url}/health", START_TIMEOUT)
        replies = _post_all(url, clip("hello", "en").read_bytes(), 8)
        ok = [r for r in replies if r.status_code == 200]
        busy = [r for r in replies if r.status_code == 503]
        assert len(ok) + len(busy) == 8
        assert 3 <= len(ok) < 8  # one running + two queued at least; the rest refused at once
        for reply in busy:
            assert int(reply.headers["retry-after"]) >= 1 and "busy" in reply.json()["detail"]
        assert all(r.json()["node"] == "busy-node" and r.json()["command"]["action"] == "hello" for r in ok)
        status = httpx.get(f"{url}/api/voice/status").json()
        assert (status["in_flight"], status["queue_depth"]) == (0, 0)
        assert send_clip(VoiceServer(url, None), clip("hello", "en")).status_code == 200  # type: ignore[arg-type]

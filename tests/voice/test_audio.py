"""Audio decoding and refusal, in process: real files through PyAV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jetfleet.voice.audio import AudioLimits, decode_audio
from jetfleet.voice.errors import AudioError

from .audio_files import silence, tone, transcode

LIMITS = AudioLimits(max_seconds=5.0)


@pytest.mark.parametrize(("container", "codec", "rate"), [("mp3", "mp3", 44100), ("ogg", "libopus", 48000),
                                                           ("flac", "flac", 22050)])
def test_other_formats_decode_to_16k_mono(clip: Callable[..., Path], container: str, codec: str, rate: int) -> None:
    source = clip("walk forward", "en")
    audio = decode_audio(transcode(source, container, codec, rate), LIMITS)
    reference = decode_audio(source.read_bytes(), LIMITS)
    assert audio.samples.ndim == 1 and audio.samples.dtype.name == "float32"
    assert abs(audio.duration_s - reference.duration_s) < 0.1


@pytest.mark.parametrize(("data", "status", "message"), [
    (b"", 400, "empty"),
    (b"this is not audio at all" * 20, 400, "could not be decoded"),
    (silence(2.0), 400, "silent"),
    (tone(0.05), 400, "too short"),
    (tone(6.0), 413, "longer than the limit of 5 s"),
])
def test_unusable_audio_is_refused(data: bytes, status: int, message: str) -> None:
    with pytest.raises(AudioError, match=message) as err:
        decode_audio(data, LIMITS)
    assert err.value.status == status


def test_ten_minutes_of_audio_is_refused_quickly() -> None:
    limits = AudioLimits(max_seconds=1.0)
    with pytest.raises(AudioError, match="longer"):
        decode_audio(tone(600.0, rate=8000, level=0.1), limits)

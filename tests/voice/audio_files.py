"""Audio files for tests, written with PyAV (FFmpeg) and numpy: other formats, silence, noise, tones."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def tone(seconds: float, rate: int = 16000, level: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes(level * np.sin(2 * np.pi * 440 * t), rate)


def silence(seconds: float, rate: int = 16000) -> bytes:
    return wav_bytes(np.zeros(int(seconds * rate)), rate)


def transcode(source: Path, container: str, codec: str, rate: int, layout: str = "stereo") -> bytes:
    """``source`` re-encoded, e.g. ("mp3", "mp3", 44100) or ("ogg", "libopus", 48000)."""
    buffer = io.BytesIO()
    with av.open(str(source)) as reader, av.open(buffer, "w", format=container) as writer:
        stream = writer.add_stream(codec, rate=rate)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for frame in reader.decode(audio=0):
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    writer.mux(packet)
        for converted in resampler.resample(None):
            for packet in stream.encode(converted):
                writer.mux(packet)
        for packet in stream.encode(None):
            writer.mux(packet)
    return buffer.getvalue()

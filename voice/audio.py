"""Decode uploaded audio (any format PyAV/FFmpeg reads) to 16 kHz mono float32, and refuse what cannot be
transcribed: undecodable, empty or silent audio (400) and audio over the length limit (413).

Decoding stops as soon as the limit is passed, so a long file is never decoded whole.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from jetfleet.voice.errors import AudioError
from jetfleet.voice.stt.base import SAMPLE_RATE, AudioArray

_FRAME = SAMPLE_RATE * 30 // 1000  # 30 ms frames for the loudness check


@dataclass(frozen=True)
class AudioLimits:
    max_seconds: float = 30.0
    min_seconds: float = 0.1
    silence_dbfs: float = -50.0  # the loudest 30 ms must be above this


@dataclass(frozen=True)
class DecodedAudio:
    samples: AudioArray
    format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def loudest_frame_dbfs(samples: AudioArray) -> float:
    """RMS level of the loudest 30 ms frame, in dB relative to full scale (-inf for digital silence)."""
    usable = len(samples) - len(samples) % _FRAME
    frames = samples[:usable].reshape(-1, _FRAME) if usable else samples.reshape(1, -1)
    rms = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1)).max(initial=0.0))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


def _decode(data: bytes, max_samples: int) -> DecodedAudio:
    chunks: list[AudioArray] = []
    total = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise AudioError("the upload has no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += len(chunk)
            if total > max_samples:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        format_name = container.format.name
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return DecodedAudio(samples, format_name)


def decode_audio(data: bytes, limits: AudioLimits) -> DecodedAudio:
    """Decoded, checked audio; raises :class:`AudioError` with the HTTP status to answer."""
    if not data:
        raise AudioError("the audio is empty (0 bytes)")
    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    try:
        audio = _decode(data, max_samples)
    except av.FFmpegError as exc:
        raise AudioError(f"the audio could not be decoded: {exc}") from exc
    if len(audio.samples) > max_samples:
        raise AudioError(f"the audio is longer than the limit of {limits.max_seconds:g} s"
                         " (--max-audio-seconds)", status=413)
    if audio.duration_s < limits.min_seconds:
        raise AudioError(f"the audio is empty or too short ({audio.duration_s:.2f} s; at least"
                         f" {limits.min_seconds:g} s of sound is needed)")
    level = loudest_frame_dbfs(audio.samples)
    if level < limits.silence_dbfs:
        raise AudioError(f"the audio is silent (loudest 30 ms at {level:.1f} dBFS, below"
                         f" {limits.silence_dbfs:g} dBFS)")
    return audio

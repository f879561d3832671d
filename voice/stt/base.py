"""The transcriber interface and its plain records (the shape of faster-whisper's public API)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

AudioArray = npt.NDArray[np.float32]  # mono, 16 kHz, -1..1
SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode one clip. The language is always forced: detection is unreliable on 1-2 s clips."""

    language: str
    hotwords: str | None = None
    initial_prompt: str | None = None
    beam_size: int = 5
    temperature: float = 0.0


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    temperature: float = 0.0


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    duration_s: float
    segments: tuple[Segment, ...] = ()

    def is_no_speech(self, *, no_speech_prob: float, logprob: float) -> bool:
        """Whisper's own rule: a segment is silence when it is both likely no-speech and poorly decoded."""
        if not self.text.strip():
            return True
        return bool(self.segments) and all(
            s.no_speech_prob > no_speech_prob and s.avg_logprob < logprob for s in self.segments)


class Transcriber(ABC):
    """A loaded speech model. ``transcribe`` may be called from several threads (up to ``workers``)."""

    backend: str
    model_name: str
    device: str

    @abstractmethod
    def transcribe(self, audio: AudioArray, options: DecodeOptions) -> Transcript:
        """Transcribe one clip; blocking, CPU/GPU bound: call it off the event loop."""

    def languages(self) -> frozenset[str] | None:
        """The languages this model can transcribe, or None for any Whisper language."""
        return None

    def score_phrases(self, audio: AudioArray, language: str,
                      phrases: Mapping[str, Sequence[str]]) -> dict[str, float] | None:
        """Log-probability that the audio says each key's phrases, unbiased; None if unsupported."""
        return None

"""faster-whisper (CTranslate2) backend: multilingual, CPU int8 or CUDA float16."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from jetfleet.voice.errors import ModelUnavailable
from jetfleet.voice.stt.base import AudioArray, DecodeOptions, Segment, Transcriber, Transcript


def _written_forms(phrase: str) -> list[str]:
    """How Whisper writes a short command; every form ends in punctuation, so a form is a whole utterance
    rather than a prefix ("Stop" is a prefix of "Stop op", "Stop." is not)."""
    capital = phrase[:1].upper() + phrase[1:]
    return [f" {base}{end}" for base in (phrase, capital) for end in (".", "!")]


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


class FasterWhisperTranscriber(Transcriber):
    backend = "faster-whisper"

    def __init__(self, model_dir: Path, *, model_name: str, device: str, compute_type: str,
                 cpu_threads: int, workers: int) -> None:
        try:
            self._model = WhisperModel(str(model_dir), device=device, compute_type=compute_type,
                                       cpu_threads=cpu_threads, num_workers=workers, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelUnavailable(f"faster-whisper could not load {model_dir} on {device}/{compute_type}: {exc}",
                                   key="--model-dir") from exc
        self.model_name = model_name
        self.device = f"{device}/{compute_type}"

    def languages(self) -> frozenset[str] | None:
        return None if self._model.model.is_multilingual else frozenset({"en"})

    def transcribe(self, audio: AudioArray, options: DecodeOptions) -> Transcript:
        segments, info = self._model.transcribe(
            audio, language=options.language, task="transcribe", beam_size=options.beam_size,
            temperature=options.temperature, condition_on_previous_text=False, vad_filter=False,
            hotwords=options.hotwords, initial_prompt=options.initial_prompt)
        records = tuple(
            Segment(id=s.id, start=s.start, end=s.end, text=s.text, tokens=tuple(s.tokens),
                    avg_logprob=s.avg_logprob, compression_ratio=s.compression_ratio,
                    no_speech_prob=s.no_speech_prob, temperature=s.temperature or 0.0)
            for s in segments)  # decoding happens while iterating the lazy generator
        text = "".join(s.text for s in records).strip()
        return Transcript(text=text, language=info.language, duration_s=info.duration, segments=records)

    def score_phrases(self, audio: AudioArray, language: str,
                      phrases: Mapping[str, Sequence[str]]) -> dict[str, float] | None:
        """Force-align each phrase to the audio without any bias and sum its token log-probabilities."""
        if not phrases:
            return {}
        model = self._model
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe",
                              language=language)
        features = model.feature_extractor(audio)
        frames = min(features.shape[-1] - 1, model.feature_extractor.nb_max_frames)
        encoded = model.encode(pad_or_trim(features[:, :frames]))  # as transcribe() prepares a window
        start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        scores: dict[str, float] = {}
        for key, texts in phrases.items():
            logprobs = []
            for form in (f for text in texts for f in _written_forms(text)):
                result = model.model.align(encoded, start, [tokenizer.encode(form)], frames)[0]
                logprobs.append(sum(math.log(max(p, 1e-12)) for p in result.text_token_probs))
            if logprobs:
                scores[key] = _logsumexp(logprobs)
        return scores

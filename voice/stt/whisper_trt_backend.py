"""whisper_trt backend (NVIDIA-AI-IOT/whisper_trt): TensorRT engines on a Jetson, English models only.

Only importable where whisper_trt, torch2trt and TensorRT are installed (the Jetson voice image). The
engine must already be built on this Jetson (engines are specific to the GPU and TensorRT version):
loading uses ``build=False`` so that start-up never downloads a checkpoint or builds silently.
"""

from __future__ import annotations

from pathlib import Path

from whisper_trt import load_trt_model

from jetfleet.voice.errors import AudioError, ModelUnavailable
from jetfleet.voice.stt.base import SAMPLE_RATE, AudioArray, DecodeOptions, Segment, Transcriber, Transcript


class WhisperTrtTranscriber(Transcriber):
    backend = "whisper-trt"

    def __init__(self, trt_model: str, engine_path: Path) -> None:
        if not engine_path.is_file():
            raise ModelUnavailable(
                f"no whisper_trt engine at {engine_path}. Build it once on this Jetson (needs the openai-whisper"
                f" checkpoint): python3 -c \"from whisper_trt import load_trt_model; load_trt_model('{trt_model}',"
                f" path='{engine_path}')\"", key="--model-dir")
        try:
            self._model = load_trt_model(trt_model, path=str(engine_path), build=False)
        except (RuntimeError, OSError) as exc:
            raise ModelUnavailable(f"whisper_trt could not load {engine_path}: {exc}", key="--model-dir") from exc
        self.model_name = trt_model
        self.device = "cuda/tensorrt-fp16"

    def languages(self) -> frozenset[str] | None:
        return frozenset({"en"})

    def transcribe(self, audio: AudioArray, options: DecodeOptions) -> Transcript:
        if options.language != "en":
            raise AudioError(f"the whisper-trt backend transcribes English only, not '{options.language}'")
        # Greedy decoding of one 30 s window; no prompt, hotwords or language arguments exist upstream.
        text = str(self._model.transcribe(audio)["text"]).strip()
        duration = len(audio) / SAMPLE_RATE
        return Transcript(text=text, language="en", duration_s=duration,
                          segments=(Segment(id=0, start=0.0, end=duration, text=text),))

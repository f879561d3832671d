"""Plan the speech-to-text setup at start (cheap checks, model join + sha256), then load it once."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from jetfleet.voice.models import ModelLocation, locate_model
from jetfleet.voice.settings import SttSettings
from jetfleet.voice.stt.base import Transcriber
from jetfleet.voice.stt.select import Backend, choose_backend, choose_device, trt_engine_filename, trt_model_name

WHISPER_TRT_CACHE = Path.home() / ".cache" / "whisper_trt"  # whisper_trt's own default


@dataclass(frozen=True)
class SttPlan:
    backend: Backend
    model_name: str
    model_path: Path
    source: str
    device: str
    compute_type: str
    cpu_threads: int
    workers: int


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_devices() -> int:
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


def _trt_engine(stt: SttSettings) -> tuple[str, Path] | None:
    if stt.language != "en" or stt.whisper_model.removesuffix(".en") not in ("tiny", "base", "small"):
        return None
    name = trt_model_name(stt.whisper_model, stt.language)
    return name, (stt.model_dir or WHISPER_TRT_CACHE) / trt_engine_filename(name)


def plan_stt(stt: SttSettings) -> SttPlan:
    """Decide backend, device and model; raises a ConfigError naming the flag when something is off."""
    engine = _trt_engine(stt)
    backend = choose_backend(stt.backend, language=stt.language, has_whisper_trt=_installed("whisper_trt"),
                             has_trt_engine=engine is not None and engine[1].is_file(),
                             has_faster_whisper=_installed("faster_whisper"))
    if backend == "whisper-trt":
        name = trt_model_name(stt.whisper_model, stt.language)
        path = (stt.model_dir or WHISPER_TRT_CACHE) / trt_engine_filename(name)
        return SttPlan(backend, name, path, f"whisper_trt engine {path}", "cuda", "float16", 0, 1)
    device, compute_type = choose_device(stt.device, cuda_devices=_cuda_devices())
    location: ModelLocation = locate_model(stt.whisper_model, stt.model_dir, stt.cache_dir)
    threads = stt.cpu_threads or max(1, (os.cpu_count() or 1) // stt.workers)
    return SttPlan(backend, stt.whisper_model if stt.model_dir is None else location.name, location.path,
                   location.source, device, compute_type, threads, stt.workers)


def load_transcriber(plan: SttPlan) -> Transcriber:
    """Load the model (seconds; blocking): call once at start, off the event loop, and share the result."""
    if plan.backend == "whisper-trt":
        from jetfleet.voice.stt.whisper_trt_backend import WhisperTrtTranscriber

        return WhisperTrtTranscriber(plan.model_name, plan.model_path)
    from jetfleet.voice.stt.faster_whisper_backend import FasterWhisperTranscriber

    return FasterWhisperTranscriber(plan.model_path, model_name=plan.model_name, device=plan.device,
                                    compute_type=plan.compute_type, cpu_threads=plan.cpu_threads,
                                    workers=plan.workers)

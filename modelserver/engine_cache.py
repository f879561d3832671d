"""The TensorRT engine cache next to a model version: key, validation, atomic store.

Serialized TensorRT engines are not portable: one built by another TensorRT version, for another
GPU (compute capability), at another precision, or from another ONNX file must never be loaded.
Each engine ``<key>.engine`` has a record ``<key>.json`` holding the full key and the engine's own
sha256; an engine is reused only when the record exists, matches the wanted key field by field,
and the engine bytes still hash to the recorded digest. Anything else is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, TypeVar

from jetfleet.files import sha256_file, write_atomic
from jetfleet.modelfiles.errors import EngineBuildError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp16", "fp32")
T = TypeVar("T")
ENGINE_SUFFIX = ".engine"
RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on (that jetfleet varies)."""

    model_sha256: str
    tensorrt_version: str
    compute_capability: str  # "8.7" on AGX Orin
    precision: Precision

    def stem(self) -> str:
        sm = self.compute_capability.replace(".", "")
        return f"{self.model_sha256[:16]}-trt{self.tensorrt_version}-sm{sm}-{self.precision}"


@dataclass(frozen=True)
class CacheLookup:
    """A usable engine path, or None with the reason it must be (re)built."""

    path: Path | None
    reason: str


class EngineCache:
    """Engines for one model version in ``directory`` (``<version>/engines``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.stem()}{ENGINE_SUFFIX}"

    def record_path(self, key: EngineKey) -> Path:
        return self.directory / f"{key.stem()}{RECORD_SUFFIX}"

    def lookup(self, key: EngineKey) -> CacheLookup:
        engine, record = self.engine_path(key), self.record_path(key)
        if not engine.is_file():
            return CacheLookup(None, f"no cached engine {engine.name}")
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return CacheLookup(None, f"engine {engine.name} has no readable record {record.name}")
        built_for = recorded.get("key") if isinstance(recorded, dict) else None
        if built_for != asdict(key):
            return CacheLookup(None, f"engine {engine.name} was built for {built_for}, not {asdict(key)}")
        if recorded.get("engine_sha256") != sha256_file(engine):
            return CacheLookup(None, f"engine {engine.name} does not match its recorded sha256 (truncated or replaced)")
        return CacheLookup(engine, f"reusing cached engine {engine.name}")

    def store(self, key: EngineKey, engine_bytes: bytes) -> Path:
        """Write the engine, then its record, each atomically; other keys' files are removed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        engine = self.engine_path(key)
        write_atomic(engine, engine_bytes, mode=0o644)
        record = {"key": asdict(key), "engine_sha256": hashlib.sha256(engine_bytes).hexdigest()}
        write_atomic(self.record_path(key), json.dumps(record, indent=2), mode=0o644)
        self._remove_others(key)
        return engine

    def discard(self, key: EngineKey) -> None:
        self.record_path(key).unlink(missing_ok=True)
        self.engine_path(key).unlink(missing_ok=True)

    def _remove_others(self, keep: EngineKey) -> None:
        for path in self.directory.iterdir():
            if path.suffix in (ENGINE_SUFFIX, RECORD_SUFFIX) and path.stem != keep.stem():
                log.info("removing stale engine cache file %s", path.name)
                path.unlink(missing_ok=True)


def obtain_engine(cache: EngineCache | None, key: EngineKey, build: Callable[[], bytes]) -> tuple[bytes, str]:
    """Engine bytes for ``key``: a valid cached engine, else a fresh build (stored when possible)."""
    if cache is not None:
        found = cache.lookup(key)
        log.info("%s", found.reason)
        if found.path is not None:
            return found.path.read_bytes(), "cached"
    engine_bytes = build()
    if cache is not None:
        try:
            cache.store(key, engine_bytes)
        except OSError as exc:  # a read-only cache still serves, it just rebuilds next start
            log.warning("cannot cache the engine in %s: %s", cache.directory, exc)
    return engine_bytes, "built"


def load_engine(cache: EngineCache | None, key: EngineKey, build: Callable[[], bytes],
                deserialize: Callable[[bytes], T]) -> T:
    """The deserialized engine for ``key``; a cached engine that TensorRT rejects is discarded and rebuilt once."""
    engine_bytes, source = obtain_engine(cache, key, build)
    try:
        return deserialize(engine_bytes)
    except EngineBuildError:
        if source != "cached" or cache is None:
            raise
    log.warning("the cached engine %s did not deserialize; rebuilding it", cache.engine_path(key).name)
    cache.discard(key)
    engine_bytes, _ = obtain_engine(cache, key, build)
    return deserialize(engine_bytes)




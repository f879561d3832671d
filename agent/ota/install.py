"""Model versions on disk, per the model-dir contract of ``jetfleet.modelfiles.layout``.

Installing is power-cut safe: the verified download is moved into a staging directory next to the
target with ``model.json`` (``manifest_verified: true``), the golden pair and an ``engines/`` dir
writable by the model server's uid, everything fsynced, then renamed to ``models_dir/NAME/VERSION``
in one step. ``models_dir/NAME/current`` is a symlink switched atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from jetfleet.agent.ota.failures import StepFailure
from jetfleet.agent.ota.observed import InstalledVersion
from jetfleet.agent.ota.states import SHA_MISMATCH
from jetfleet.files import fsync_path, sha256_file
from jetfleet.manifest import DesiredModel, GoldenCheck, TensorSpecEntry
from jetfleet.modelfiles.layout import (
    MODEL_SERVER_UID,
    ModelMetadata,
    engine_cache_dir,
    read_metadata,
    write_metadata,
)
from jetfleet.modelfiles.tensors import TensorSpec

log = logging.getLogger("jetfleet.agent.ota")
GOLDEN_DIRNAME = "golden"
GOLDEN_CHECK_FILE = "check.json"
CURRENT_LINK = "current"



def check_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise StepFailure(SHA_MISMATCH, f"{what}: sha256 is {actual}, the signed manifest says {expected}")


class ModelStore:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def version_dir(self, name: str, version: int) -> Path:
        return self.models_dir / name / str(version)

    def install(self, model: DesiredModel, artifact: Path, golden: dict[str, Path]) -> Path:
        """Move verified files into ``NAME/VERSION`` atomically (replacing a stale dir of that version)."""
        parent = self.models_dir / model.name
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".staging-{model.version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            os.replace(artifact, staging / model.filename)
            if model.golden is not None:
                _place_golden(staging, model.golden, golden)
            write_metadata(staging, _metadata(model))
            _world_readable(staging)  # the containerised server runs as another uid
            engines = engine_cache_dir(staging)
            engines.mkdir()
            _give_to_model_server(engines)
            _fsync_tree(staging)
            target = self.version_dir(model.name, model.version)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            fsync_path(parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def remove(self, name: str, version: int) -> None:
        target = self.version_dir(name, version)
        if target.exists():
            trash = target.with_name(f".removing-{version}-{uuid.uuid4().hex[:8]}")
            os.replace(target, trash)  # gone from view at once, even if the delete is slow
            shutil.rmtree(trash, ignore_errors=True)

    def set_current(self, name: str, version: int) -> None:
        link = self.models_dir / name / CURRENT_LINK
        tmp = link.with_name(f".current-{uuid.uuid4().hex[:8]}")
        os.symlink(str(version), tmp)
        os.replace(tmp, link)

    def clear_current(self, name: str) -> None:
        (self.models_dir / name / CURRENT_LINK).unlink(missing_ok=True)

    def clean_leftovers(self) -> None:
        """Remove half-installed and half-removed dirs a crash left behind (call before any install runs)."""
        for model_dir in self._model_dirs():
            for entry in model_dir.iterdir():
                if entry.name.startswith((".staging-", ".removing-")):
                    shutil.rmtree(entry, ignore_errors=True)

    def _model_dirs(self) -> list[Path]:
        if not self.models_dir.is_dir():
            return []
        return [d for d in self.models_dir.iterdir() if not d.name.startswith(".") and d.is_dir()]

    def installed(self) -> dict[str, dict[int, InstalledVersion]]:
        """Complete version directories (with a valid model.json)."""
        found: dict[str, dict[int, InstalledVersion]] = {}
        for model_dir in self._model_dirs():
            for entry in model_dir.iterdir():
                if entry.name.isdigit() and entry.is_dir() and not entry.is_symlink():
                    version = self._read(entry)
                    if version is not None:
                        found.setdefault(model_dir.name, {})[version.version] = version
        return found

    @staticmethod
    def _read(entry: Path) -> InstalledVersion | None:
        try:
            metadata = read_metadata(entry)
        except Exception as exc:  # a broken dir is not installed; cleanup or a reinstall replaces it
            log.warning("ignoring %s: %s", entry, exc)
            return None
        return InstalledVersion(int(metadata.version), metadata.sha256, _disk_bytes(entry))

    def golden(self, name: str, version: int) -> tuple[Path, Path, float, float] | None:
        """The golden (input, output, rtol, atol) of an installed version, if it has one."""
        directory = self.version_dir(name, version) / GOLDEN_DIRNAME
        try:
            check = json.loads((directory / GOLDEN_CHECK_FILE).read_text())
        except FileNotFoundError:
            return None
        return directory / check["input"], directory / check["output"], float(check["rtol"]), float(check["atol"])


def _metadata(model: DesiredModel) -> ModelMetadata:
    return ModelMetadata(name=model.name, version=str(model.version), framework=model.framework,
                         artifact=model.filename, sha256=model.sha256, size_bytes=model.size_bytes,
                         manifest_verified=True, inputs=_specs(model.inputs), outputs=_specs(model.outputs))


def _specs(entries: tuple[TensorSpecEntry, ...] | None) -> tuple[TensorSpec, ...] | None:
    if entries is None:
        return None
    return tuple(TensorSpec.model_validate(e.model_dump()) for e in entries)


def _place_golden(staging: Path, check: GoldenCheck, files: dict[str, Path]) -> None:
    directory = staging / GOLDEN_DIRNAME
    directory.mkdir()
    for kind, ref in (("input", check.input), ("output", check.output)):
        os.replace(files[kind], directory / ref.filename)
    (directory / GOLDEN_CHECK_FILE).write_text(json.dumps(
        {"input": check.input.filename, "output": check.output.filename, "rtol": check.rtol, "atol": check.atol}))


def _world_readable(directory: Path) -> None:
    for root, _dirs, files in os.walk(directory):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _give_to_model_server(engines: Path) -> None:
    """The model server (uid 10001 in its container) writes TensorRT engines here."""
    if os.geteuid() == 0:
        os.chown(engines, MODEL_SERVER_UID, MODEL_SERVER_UID)
    else:
        engines.chmod(0o777)


def _disk_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _fsync_tree(path: Path) -> None:
    for root, dirs, files in os.walk(path, topdown=False):
        for name in [*files, *dirs]:
            fsync_path(os.path.join(root, name))
    fsync_path(path)


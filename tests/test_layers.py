"""The layer contracts (pyproject.toml, import-linter) hold, cover the whole floor, and catch a wrong-way import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.support.processes import REPO_ROOT, subprocess_env

ROLES = ("agent", "backend", "voice", "gateway", "modelserver", "bench")
ENTRY_POINTS = {"__init__", "__main__", "cli"}


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--config", str(root / "pyproject.toml")], cwd=root, capture_output=True,
                          text=True, env=subprocess_env(PYTHONPATH=str(root)), timeout=300)


def test_every_role_is_a_link_from_the_installed_name() -> None:
    for role in ROLES:
        link = REPO_ROOT / "jetfleet" / role
        assert link.is_symlink() and link.resolve() == (REPO_ROOT / role).resolve(), role


def test_the_floor_contract_names_every_floor_module() -> None:
    floor = next(c for c in _contracts() if str(c["name"]).startswith("The shared floor"))
    listed = {str(name).removeprefix("jetfleet.") for name in floor["source_modules"]}  # type: ignore[attr-defined]
    on_disk = {p.stem for p in (REPO_ROOT / "jetfleet").glob("*.py")} - ENTRY_POINTS
    on_disk |= {p.name for p in (REPO_ROOT / "jetfleet").iterdir()
                if p.is_dir() and not p.is_symlink() and (p / "__init__.py").exists()}
    assert on_disk == listed, f"floor modules missing from the contract: {sorted(on_disk - listed)}"


def test_the_contracts_hold() -> None:
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "wrong_import", "contract"), [
    ("agent/heartbeat.py", "import jetfleet.bench.output", "Roles never import bench/"),
    ("voice/grammar.py", "import jetfleet.agent.config", "Roles do not import each other"),
    ("jetfleet/errors.py", "import jetfleet.backend.settings", "The shared floor imports no role"),
    ("gateway/render.py", "import agent.config", "Nothing imports the repository folders by their bare names"),
])
def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path, module: str, wrong_import: str, contract: str) -> None:
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", copy)
    shutil.copytree(REPO_ROOT / "jetfleet", copy / "jetfleet", symlinks=True)
    for role in ROLES:
        shutil.copytree(REPO_ROOT / role, copy / role, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # a wrong-way import\n")
    result = _lint_imports(copy)
    assert result.returncode != 0, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout, result.stdout

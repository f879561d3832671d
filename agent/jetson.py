"""Jetson identity facts read from files under a host root: device tree, L4T release, CUDA/TensorRT, power mode.

Every path is relative to ``host_root`` so tests point at fixture trees and a containerised agent can read a
host mounted at ``/host``. Nothing here raises on a missing or odd file: an unknown fact is ``None``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

_L4T_RE = re.compile(r"^# R(\d+) \(release\), REVISION: (\d+)\.(\d+)")
_PART_RE = re.compile(r"p\d{4}-\d{4}")
_DPKG_VERSION_RE = re.compile(r"^(\d+(?:\.\d+)*)")
DEVICE_TREE_DIRS = ("proc/device-tree", "sys/firmware/devicetree/base")


@cache
def jetson_data() -> dict[str, Any]:
    """The shipped tables (L4T -> JetPack, part number -> module, SoC -> GPU), see ``jetson_data.json``."""
    text = resources.files("jetfleet.agent").joinpath("jetson_data.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def read_text(path: Path) -> str | None:
    """File contents without NULs and surrounding whitespace, or ``None`` when it cannot be read."""
    try:
        return path.read_bytes().replace(b"\x00", b"\n").decode("utf-8", errors="replace").strip()
    except OSError:
        return None


def device_tree_value(host_root: Path, name: str) -> str | None:
    for directory in DEVICE_TREE_DIRS:
        value = read_text(host_root / directory / name)
        if value is not None:
            return value
    return None


def compatible_entries(host_root: Path) -> list[str]:
    """``/proc/device-tree/compatible`` split at its NULs, e.g. ``['nvidia,p3737-0000+p3701-0005', ...]``."""
    raw = device_tree_value(host_root, "compatible")
    return [entry.strip() for entry in raw.splitlines() if entry.strip()] if raw else []


def is_jetson(host_root: Path) -> bool:
    if (host_root / "etc/nv_tegra_release").is_file():
        return True
    return any("tegra" in entry for entry in compatible_entries(host_root) if entry.startswith("nvidia,"))


def model_name(host_root: Path) -> str | None:
    """``/proc/device-tree/model`` (NUL stripped); carrier boards change it freely, so use ``module`` for logic."""
    return device_tree_value(host_root, "model") or None


def soc_name(host_root: Path) -> str | None:
    for entry in reversed(compatible_entries(host_root)):
        match = re.fullmatch(r"nvidia,(tegra\d+)", entry)
        if match:
            return match.group(1)
    dts = device_tree_value(host_root, "nvidia,dtsfilename") or ""
    match = re.search(r"(tegra\d+)-", Path(dts).name)
    return match.group(1) if match else None


def module_part_numbers(host_root: Path) -> list[str]:
    """Part numbers from ``compatible`` first, then from ``nvidia,dtsfilename``, in order of appearance."""
    sources = [*compatible_entries(host_root), Path(device_tree_value(host_root, "nvidia,dtsfilename") or "").name]
    parts: list[str] = []
    for source in sources:
        for part in _PART_RE.findall(source):
            if part not in parts:
                parts.append(part)
    return parts


def module_name(host_root: Path) -> str | None:
    """The module (``AGX Orin 32GB``) from its part number; the carrier's part number is not in the table."""
    table: dict[str, str] = jetson_data()["modules"]
    for part in module_part_numbers(host_root):
        if part in table:
            return table[part]
    return None


def l4t_release(host_root: Path) -> str | None:
    """``36.4.4`` from the first line of ``/etc/nv_tegra_release``, else from dpkg's ``nvidia-l4t-core``."""
    text = read_text(host_root / "etc/nv_tegra_release")
    if text:
        match = _L4T_RE.match(text.splitlines()[0])
        if match:
            return ".".join(match.groups())
    return dpkg_version(host_root, ("nvidia-l4t-core",))


def jetpack_for_l4t(l4t: str | None) -> str | None:
    """JetPack release for an L4T release, or ``None`` when the table does not know it (never a guess)."""
    if l4t is None:
        return None
    table: dict[str, str] = jetson_data()["l4t_to_jetpack"]
    return table.get(l4t if l4t.count(".") == 2 else f"{l4t}.0")


def cuda_version(host_root: Path) -> str | None:
    cuda = host_root / "usr/local/cuda"
    text = read_text(cuda / "version.json")
    if text:
        try:
            version = json.loads(text)["cuda"]["version"]
            return str(version)
        except (ValueError, KeyError, TypeError):
            pass
    text = read_text(cuda / "version.txt")
    match = re.search(r"CUDA Version\s+(\d+(?:\.\d+)*)", text or "")
    return match.group(1) if match else None


_TRT_HEADERS = ("usr/include/aarch64-linux-gnu/NvInferVersion.h", "usr/include/x86_64-linux-gnu/NvInferVersion.h",
                "usr/include/NvInferVersion.h", "usr/local/tensorrt/include/NvInferVersion.h")
_TRT_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer8", "libnvinfer7", "nvidia-tensorrt")


def tensorrt_version(host_root: Path) -> str | None:
    for header in _TRT_HEADERS:
        version = _version_from_header(read_text(host_root / header))
        if version:
            return version
    return dpkg_version(host_root, _TRT_PACKAGES)


def _version_from_header(text: str | None) -> str | None:
    if not text:
        return None
    defines = dict(re.findall(r"^#define\s+(\w+)\s+(\w+)", text, flags=re.MULTILINE))

    def resolve(name: str) -> str | None:
        value = defines.get(name)
        # TensorRT >= 10.11 defines NV_TENSORRT_MAJOR as TRT_MAJOR_ENTERPRISE: follow one indirection.
        value = defines.get(value, value) if value else None
        return value if value and value.isdigit() else None

    parts = [resolve(f"NV_TENSORRT_{part}") for part in ("MAJOR", "MINOR", "PATCH")]
    if any(part is None for part in parts):
        return None
    return ".".join(part for part in parts if part)


def dpkg_version(host_root: Path, packages: tuple[str, ...]) -> str | None:
    """Numeric version of the first installed package of ``packages`` found in dpkg's status file."""
    found: dict[str, str] = {}
    for stanza in _dpkg_stanzas(host_root / "var/lib/dpkg/status"):
        name = stanza.get("Package")
        if name in packages and "installed" in stanza.get("Status", "installed").split():
            match = _DPKG_VERSION_RE.match(stanza.get("Version", "").split(":")[-1])
            if match:
                found[name] = match.group(1)
    return next((found[name] for name in packages if name in found), None)


def _dpkg_stanzas(path: Path) -> Iterator[dict[str, str]]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        stanza: dict[str, str] = {}
        for line in handle:
            if not line.strip():
                if stanza:
                    yield stanza
                stanza = {}
            elif not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                if key in ("Package", "Status", "Version"):
                    stanza[key] = value.strip()
        if stanza:
            yield stanza


@dataclass(frozen=True)
class PowerMode:
    id: str
    name: str | None


def power_mode(host_root: Path) -> PowerMode | None:
    """nvpmodel's mode without root: the id in ``/var/lib/nvpmodel/status``, its name in ``/etc/nvpmodel.conf``."""
    status = read_text(host_root / "var/lib/nvpmodel/status")
    match = re.search(r"pmode:(\d+)", status or "")
    if not match:
        return None
    mode_id = str(int(match.group(1)))
    conf = read_text(host_root / "etc/nvpmodel.conf") or ""
    names = dict(re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+?)\s*>", conf))
    return PowerMode(id=mode_id, name=names.get(mode_id))

"""Idempotency keys of results and sketch windows, and the partial-sketch record (light: no numpy)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jetfleet.jobs import IDEMPOTENCY_KEY_PATTERN

MAX_KEY = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


@dataclass(frozen=True)
class Partial:
    """One feature's sketch over one input file (merged into the run's window when the run ends)."""

    kind: str  # "input" | "output"
    tensor: str
    index: int
    kll: bytes


def safe_segment(text: str, limit: int = 48) -> str:
    """``text`` in the key alphabet; altered or long names get a short hash so that two never collide."""
    clean = _UNSAFE.sub("_", text)
    if clean == text and len(text) <= limit:
        return text
    return f"{clean[:limit - 9]}~{hashlib.sha256(text.encode()).hexdigest()[:8]}".replace("~", "_")


def result_key(device_id: str, job: str, run_id: str, input_sha256: str) -> str:
    return _checked(f"{device_id}.{job}.{run_id}.{input_sha256[:16]}")


def sketch_key(device_id: str, job: str, run_id: str, version: int, kind: str, tensor: str, index: int) -> str:
    """One window's key; the version is part of it because a run can span a model swap."""
    return _checked(f"{device_id}.{job}.{run_id}.v{version}.{kind}.{safe_segment(tensor)}.{index}")


def _checked(key: str) -> str:
    if len(key) > MAX_KEY:
        key = f"{key[:MAX_KEY - 17]}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if not _KEY.match(key):
        raise ValueError(f"idempotency key {key!r} does not match {IDEMPOTENCY_KEY_PATTERN}")
    return key


def groups(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[tuple[Any, ...], list[bytes]]]:
    """Group (group key..., blob) rows by everything but the blob."""
    table: dict[tuple[Any, ...], list[bytes]] = {}
    for *key, blob in rows:
        table.setdefault(tuple(key), []).append(blob)
    yield from table.items()

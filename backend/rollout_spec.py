"""Parsing the knobs of a staged rollout (pure): waves, failure budget, soak time and gates.

``--rollout "1,10%,50%,100%"``: cumulative wave sizes, each a device count or a percentage of the devices
following the tag (rounded up; a wave that adds no device is dropped; devices left over after the last
wave form one more wave). ``--max-failures 2`` or ``--max-failures 10%`` (of the rollout's devices,
rounded down). ``--soak 30s`` (s, m, h; a bare number is seconds). ``--gate "p99_ms<50"``: a metric the
devices report per model version, a comparison and a number.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from jetfleet.backend.artifacts import InvalidField

GATE_METRICS = ("error_ratio", "p50_ms", "p95_ms", "p99_ms")
_OPS: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge, "<": operator.lt,
                                                    ">": operator.gt}
_GATE = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
# For the API schema: a known metric, an operator and a number (what parse_gate accepts).
GATE_PATTERN = (r"^\s*(?:" + "|".join(GATE_METRICS) + r")\s*(?:<=|>=|<|>)\s*[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*$")
# Wave sizes as the schema can say them; that they never shrink is checked by parse_waves (a 422 naming it).
WAVES_PATTERN = r"^\s*[0-9]{1,9}(?:\.[0-9]+)?%?\s*(?:,\s*[0-9]{1,9}(?:\.[0-9]+)?%?\s*)*$"
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class WaveSize:
    count: int | None = None
    percent: float | None = None

    def devices(self, total: int) -> int:
        if self.count is not None:
            return min(self.count, total)
        assert self.percent is not None
        return min(total, math.ceil(total * self.percent / 100 - 1e-9))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_waves(text: str, *, field: str = "rollout") -> list[WaveSize]:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidField(field, f"{text!r}: give wave sizes separated by commas, e.g. '1,10%,50%,100%'")
    sizes = [_wave(p, field) for p in parts]
    for before, after in itertools.pairwise(sizes):
        if (before.count is not None and after.count is not None and after.count < before.count) or \
                (before.percent is not None and after.percent is not None and after.percent < before.percent):
            raise InvalidField(field, f"wave sizes are cumulative and must not shrink ({before} then {after})")
    return sizes


def _wave(part: str, field: str) -> WaveSize:
    try:
        if part.endswith("%"):
            percent = float(part[:-1])
            if not 0 < percent <= 100:
                raise InvalidField(field, f"wave {part!r}: a percentage must be above 0 and at most 100")
            return WaveSize(percent=percent)
        count = int(part)
    except ValueError as exc:
        raise InvalidField(field, f"wave {part!r} is neither a device count nor a percentage") from exc
    if count < 1:
        raise InvalidField(field, f"wave {part!r}: a device count must be at least 1")
    return WaveSize(count=count)


def plan_waves(sizes: Sequence[WaveSize], devices: Sequence[str]) -> list[list[str]]:
    """Split ``devices`` (in this order) into waves of the cumulative ``sizes``; no empty wave."""
    waves: list[list[str]] = []
    done = 0
    for size in sizes:
        upto = size.devices(len(devices))
        if upto > done:
            waves.append(list(devices[done:upto]))
            done = upto
    if done < len(devices):
        waves.append(list(devices[done:]))
    return waves


@dataclass(frozen=True)
class FailureBudget:
    count: int | None = None
    percent: float | None = None

    def allowed(self, total: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(total * self.percent / 100 + 1e-9)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


def parse_max_failures(text: str, *, field: str = "max_failures") -> FailureBudget:
    try:
        if text.strip().endswith("%"):
            percent = float(text.strip()[:-1])
            if 0 <= percent <= 100:
                return FailureBudget(percent=percent)
        else:
            count = int(text)
            if count >= 0:
                return FailureBudget(count=count)
    except ValueError:
        pass
    raise InvalidField(field, f"{text!r}: give a device count (e.g. 0, 2) or a percentage (e.g. 10%)")


def parse_duration(text: str, *, field: str = "soak") -> float:
    match = _DURATION.match(text)
    if match is None:
        raise InvalidField(field, f"{text!r}: give a duration like 30s, 5m, 1h or 500ms")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    threshold: float

    def holds(self, values: Mapping[str, float | None]) -> bool | None:
        """True/False; None when the device reported no value (no traffic yet): no evidence either way."""
        value = values.get(self.metric)
        return None if value is None else _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"


def parse_gate(text: str, *, field: str = "gate") -> Gate:
    match = _GATE.match(text)
    if match is None:
        raise InvalidField(field, f"{text!r}: expected METRIC OP NUMBER, e.g. 'error_ratio<0.01' or 'p99_ms<50'")
    metric, op, threshold = match[1], match[2], float(match[3])
    if metric not in GATE_METRICS:
        raise InvalidField(field, f"{text!r}: unknown metric {metric!r} (known: {', '.join(GATE_METRICS)})")
    return Gate(metric, op, threshold)

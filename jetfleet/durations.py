"""Durations as Traefik writes them (Go syntax: ``1s``, ``500ms``, ``1m30s``, plus ``d`` for days), in seconds and back.

One parser for every duration a user types: gateway settings, ``--every``, ``--soak``, ``--expires``, retention.
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from ``"1s"``, ``"250ms"``, ``"1m30s"`` or a plain number of seconds; raise ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '1s' or '500ms', got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        parts = _PART.findall(text)
        if "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"expected a duration like '1s', '500ms' or '1m30s', got {value!r}")
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    else:
        raise ValueError(f"expected a duration like '1s' or '500ms', got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def go_duration(seconds: float) -> str:
    """The Go duration string Traefik parses: whole milliseconds (``"1s"``, ``"500ms"``, ``"1500ms"``)."""
    millis = round(seconds * 1000)
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"

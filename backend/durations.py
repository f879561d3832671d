"""Human durations for flags: ``90s``, ``15m``, ``1h30m``, ``30d``, ``2w`` or plain seconds (``45``, ``0.5``)."""

from __future__ import annotations

import math
import re

from jetfleet.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+")


def parse_duration(text: str, *, key: str) -> float:
    """Seconds in ``text``; a ConfigError naming ``key`` when it is not a positive duration."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        if not _WHOLE.fullmatch(value):
            raise ConfigError(f"{text!r} is not a duration (e.g. 30s, 15m, 1h30m, 7d, or seconds)",
                              key=key) from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{text!r} must be longer than zero", key=key)
    return seconds

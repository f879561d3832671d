"""Label selectors (Kubernetes-like) for picking devices: parse once, match many.

Grammar: requirements separated by commas (commas inside parentheses belong to the set)::

    role=vision          key equals value (``==`` too)
    site!=lab-b          key absent, or another value
    tier in (a, b)       key present with one of the values
    tier notin (a, b)    key absent, or none of the values
    gpu                  key present
    !gpu                 key absent

Keys and values follow the label rules (:data:`LABEL_KEY_PATTERN`, :data:`LABEL_VALUE_PATTERN`). A bad
selector raises :class:`SelectorError` naming the bad part. Used by the control plane (deploy, undeploy,
jobs) and usable on a device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from jetfleet.errors import ConfigError

LABEL_KEY_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?$"
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$"
Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_K = r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?"
_V = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"
_PART = (rf"\s*(?:{_K}\s+(?:in|notin)\s*\(\s*{_V}(?:\s*,\s*{_V})*\s*\)"
         rf"|{_K}\s*(?:==|=|!=)\s*(?:{_V})?|!?{_K})\s*")
# The grammar above as one regular expression, for the API schema (generated clients, fuzzers).
SELECTOR_PATTERN = rf"^{_PART}(?:,{_PART})*$"

_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ = re.compile(r"^(?P<key>[^=!\s]+)\s*(?P<op>==|=|!=)\s*(?P<value>\S*)$")


class SelectorError(ConfigError):
    """A selector (or a label) that does not parse; the message names the bad part."""

    def __init__(self, message: str, *, key: str = "--selector") -> None:
        super().__init__(message, key=key)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "=" or self.op == "in":
            return value is not None and value in self.values
        if self.op == "!=" or self.op == "notin":
            return value is None or value not in self.values
        return (value is not None) == (self.op == "exists")

    def __str__(self) -> str:
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{next(iter(self.values))}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({', '.join(sorted(self.values))})"
        return self.key if self.op == "exists" else f"!{self.key}"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every requirement holds (the empty selector matches everything)."""
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_selector(text: str) -> Selector:
    parts = _split(text)
    if not parts:
        raise SelectorError(f"empty selector {text!r}: give e.g. 'role=vision,site=lab-a'")
    return Selector(tuple(_requirement(part) for part in parts))


def _split(text: str) -> list[str]:
    parts, current, depth = [], "", 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if depth:
        raise SelectorError(f"unclosed '(' in {text!r}")
    parts.append(current.strip())
    if any(not p for p in parts) and text.strip():
        raise SelectorError(f"empty requirement in {text!r} (two commas, or one at an end)")
    return [p for p in parts if p]


def _requirement(part: str) -> Requirement:
    if match := _SET.match(part):
        values = [v.strip() for v in match["values"].split(",")]
        if not any(values) or any(not v for v in values):
            raise SelectorError(f"{part!r}: the set needs values separated by commas, e.g. 'tier in (a, b)'")
        key = _key(match["key"], part)
        return Requirement(key, match["op"], frozenset(_value(v, part) for v in values))  # type: ignore[arg-type]
    if match := _EQ.match(part):
        op: Operator = "!=" if match["op"] == "!=" else "="
        return Requirement(_key(match["key"], part), op, frozenset({_value(match["value"], part)}))
    if part.startswith("!") and re.fullmatch(LABEL_KEY_PATTERN, part[1:]):
        return Requirement(part[1:], "!exists")
    if re.fullmatch(LABEL_KEY_PATTERN, part):
        return Requirement(part, "exists")
    raise SelectorError(f"cannot parse {part!r}: use key=value, key!=value, key in (a, b), key notin (a, b), "
                        "key or !key")


def _key(key: str, part: str) -> str:
    if not re.fullmatch(LABEL_KEY_PATTERN, key):
        raise SelectorError(f"{part!r}: bad label key {key!r} (letters, digits, '.', '_', '-', '/'; at most 64)")
    return key


def _value(value: str, part: str) -> str:
    if not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise SelectorError(f"{part!r}: bad label value {value!r} (letters, digits, '.', '_', '-'; at most 63)")
    return value


def parse_labels(pairs: list[str], *, key: str = "labels") -> dict[str, str]:
    """``["role=vision", "site=lab-a"]`` -> ``{"role": "vision", "site": "lab-a"}``."""
    labels: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SelectorError(f"{pair!r}: expected key=value", key=key)
        check_label(name.strip(), value.strip(), key=key)
        labels[name.strip()] = value.strip()
    return labels


def check_label(name: str, value: str, *, key: str = "labels") -> None:
    if not re.fullmatch(LABEL_KEY_PATTERN, name):
        raise SelectorError(f"bad label key {name!r} (letters, digits, '.', '_', '-', '/'; at most 64)", key=key)
    if not re.fullmatch(LABEL_VALUE_PATTERN, value):
        raise SelectorError(f"label {name}: bad value {value!r} (letters, digits, '.', '_', '-'; at most 63)",
                            key=key)

"""Cache invalidation between control-plane replicas that share one PostgreSQL database.

Each replica caches every device's desired state (:mod:`jetfleet.backend.desired_state`) and token hash
(:mod:`jetfleet.backend.ingest`). A change that makes those caches stale marks the device ids on its
database session (:func:`mark`); on PostgreSQL a ``before_commit`` hook (:func:`install`) turns the marks
into one ``pg_notify`` on :data:`CHANNEL` in the same transaction, so the notification is delivered exactly
when the change becomes visible, and never for a rolled-back change. The payload is JSON::

    {"r": "<sending replica>", "d": ["dev-1", ...] | "all", "a": ["dev-1", ...] | "all"}

``d`` lists devices whose desired state changed, ``a`` devices whose token changed. A payload that would
not fit PostgreSQL's 8000-byte limit says ``"all"`` instead of the list. The listener side lives in
:mod:`jetfleet.backend.cache_listener`. On SQLite (one process owns the database) nothing is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("jetfleet.backend.invalidation")
CHANNEL = "jetfleet_invalidate"
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses payloads of 8000 bytes or more; keep a margin
_INFO_KEY = "jetfleet.invalidate"
ALL: Literal["all"] = "all"
Scope = frozenset[str] | Literal["all"]  # the devices concerned: some ids (maybe none) or every device
NOTHING: Scope = frozenset()


@dataclass(frozen=True)
class Invalidation:
    """What to drop from the caches: desired state of ``desired``, token hashes of ``auth``."""

    origin: str = ""
    desired: Scope = NOTHING
    auth: Scope = NOTHING

    def merge(self, other: Invalidation) -> Invalidation:
        return Invalidation(self.origin or other.origin, _union(self.desired, other.desired),
                            _union(self.auth, other.auth))

    @property
    def empty(self) -> bool:
        return not self.desired and not self.auth


def _union(a: Scope, b: Scope) -> Scope:
    if a == ALL or b == ALL:
        return ALL
    return a | b  # type: ignore[operator]


def encode(change: Invalidation) -> str:
    """The NOTIFY payload; a list too long for PostgreSQL's limit becomes ``"all"``."""
    body: dict[str, Any] = {"r": change.origin}
    for key, scope in (("d", change.desired), ("a", change.auth)):
        if scope:
            body[key] = scope if scope == ALL else sorted(scope)
    text = json.dumps(body, separators=(",", ":"))
    if len(text.encode()) <= MAX_PAYLOAD_BYTES:
        return text
    wide: dict[str, str] = {"r": change.origin, **{key: ALL for key in ("d", "a") if key in body}}
    return json.dumps(wide, separators=(",", ":"))


def decode(payload: str) -> Invalidation:
    """Parse a payload; anything unreadable invalidates everything (a missed change is worse than a reload)."""
    try:
        body = json.loads(payload)
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return Invalidation(str(body.get("r", "")), _scope(body.get("d")), _scope(body.get("a")))
    except ValueError as exc:
        log.warning("unreadable invalidation payload %.80r (%s): dropping every cached entry", payload, exc)
        return Invalidation("", ALL, ALL)


def _scope(value: object) -> Scope:
    if value is None:
        return NOTHING
    if value == ALL:
        return ALL
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise ValueError(f"expected a list of device ids or 'all', got {value!r:.40}")


def mark(session: Session, *, desired: Iterable[str] | None = None, auth: Iterable[str] | None = None) -> None:
    """Note devices whose cached desired state (``desired``) or token (``auth``) the session's change makes
    stale; sent to the other replicas at commit (on PostgreSQL), dropped on rollback."""
    change = Invalidation(desired=frozenset(desired or ()), auth=frozenset(auth or ()))
    if change.empty:
        return
    pending = session.info.get(_INFO_KEY)
    session.info[_INFO_KEY] = change if pending is None else pending.merge(change)


def install(sessions: sessionmaker[Session], origin: str) -> None:
    """Send each committing session's marks as one NOTIFY, in its transaction (PostgreSQL only)."""

    def before_commit(session: Session) -> None:
        change: Invalidation | None = session.info.pop(_INFO_KEY, None)
        if change is not None and not change.empty:
            payload = encode(Invalidation(origin, change.desired, change.auth))
            session.execute(select(func.pg_notify(CHANNEL, payload)))

    def after_rollback(session: Session) -> None:
        session.info.pop(_INFO_KEY, None)

    event.listen(sessions, "before_commit", before_commit)
    event.listen(sessions, "after_soft_rollback", lambda session, _previous: after_rollback(session))

"""Dedicated PostgreSQL sessions (outside SQLAlchemy's pool) for the replica's listener and leader lease.

Both need a session of their own that lives as long as the replica: LISTEN only hears on the session that
ran it, and an advisory lock belongs to the session that took it. TCP keepalives make a silently dead
peer show up as an error within seconds instead of hanging the thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import make_url

from jetfleet.errors import TemporaryError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 5
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2}


class DatabaseUnavailable(TemporaryError):
    """The dedicated session could not be opened or was lost."""


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL ``postgresql+psycopg://...`` as a libpq connection URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(database_url: str, application_name: str) -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit session with keepalives; ``DatabaseUnavailable`` when it cannot be opened."""
    import psycopg

    try:
        conninfo = psycopg.conninfo.make_conninfo(libpq_url(database_url), connect_timeout=CONNECT_TIMEOUT_S,
                                                  application_name=application_name[:63], **_KEEPALIVES)
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"cannot open a PostgreSQL session: {exc}", delay=1.0) from exc


class Backoff:
    """Bounded exponential delays between reconnection attempts (reset after a success)."""

    def __init__(self, first: float = 0.2, limit: float = 5.0) -> None:
        self.first, self.limit = first, limit
        self._next = first

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self.limit)
        return delay

    def reset(self) -> None:
        self._next = self.first

"""Named API tokens (stored as SHA-256, shown once) and the audit log's rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from jetfleet.backend.access_schemas import TokenRecord
from jetfleet.backend.auth import Principal, Scope, hash_token, new_token
from jetfleet.backend.models import Base
from jetfleet.errors import ConflictError, NotFoundError


class ApiToken(Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(256))
    status: Mapped[int] = mapped_column(Integer)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def record(row: ApiToken, now: datetime) -> TokenRecord:
    expired = row.expires_at is not None and row.expires_at <= now
    state: Literal["active", "expired", "revoked"] = "revoked" if row.revoked_at else "expired" if expired else "active"
    return TokenRecord(name=row.name, scope=row.scope, created_at=row.created_at,  # type: ignore[arg-type]
                       created_by=row.created_by, expires_at=row.expires_at, revoked_at=row.revoked_at,
                       last_used_at=row.last_used_at, state=state)


def create(session: Session, name: str, scope: Scope, expires_in: timedelta | None,
           created_by: str) -> tuple[str, TokenRecord]:
    """A new token NAME; the secret is returned here once and stored only as its hash."""
    if session.get(ApiToken, name) is not None:
        raise ConflictError(f"name: a token named '{name}' exists (revoke it first, or pick another name)")
    secret = new_token()
    now = _now()
    row = ApiToken(name=name, scope=scope, token_hash=hash_token(secret), created_at=now, created_by=created_by,
                   expires_at=now + expires_in if expires_in else None, revoked_at=None, last_used_at=None)
    session.add(row)
    session.flush()
    return secret, record(row, now)


def list_tokens(session: Session) -> list[TokenRecord]:
    now = _now()
    return [record(row, now) for row in session.scalars(select(ApiToken).order_by(ApiToken.name))]


def revoke(session: Session, name: str) -> TokenRecord:
    row = session.get(ApiToken, name)
    if row is None:
        raise NotFoundError(f"unknown token '{name}'")
    if row.revoked_at is None:
        row.revoked_at = _now()
    return record(row, _now())


def resolve(sessions: sessionmaker[Session], token_hash: str) -> Principal | str:
    """The principal of a token hash, or why it is refused (unknown, expired, revoked)."""
    now = _now()
    with sessions.begin() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == token_hash)).one_or_none()
        if row is None:
            return "unknown token"
        if row.revoked_at is not None:
            return f"token '{row.name}' was revoked"
        if row.expires_at is not None and row.expires_at <= now:
            return f"token '{row.name}' expired at {row.expires_at.isoformat(timespec='seconds')}"
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now  # at most one write a minute per token (Prometheus polls often)
        return Principal(row.name, row.scope)  # type: ignore[arg-type]


def add_event(sessions: sessionmaker[Session], **fields: Any) -> None:
    with sessions.begin() as session:
        session.add(AuditEvent(at=_now(), **fields))


def events(session: Session, since: datetime | None, limit: int) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(reversed(session.scalars(query).all()))

"""HTTP endpoints of API tokens (/api/v1/tokens, admin) and the audit log (/api/v1/audit, admin)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BeforeValidator

from jetfleet.backend import appstate, tokens
from jetfleet.backend.access_schemas import TOKEN_NAME_PATTERN, AuditRecord, CreatedToken, CreateToken, TokenRecord
from jetfleet.backend.auth import Principal, require_admin
from jetfleet.httpapi import errors

router = APIRouter(prefix="/api/v1", tags=["access"])
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def _iso_only(value: object) -> object:
    """An ISO 8601 date-time, not a number of seconds (which pydantic would also take)."""
    if isinstance(value, str) and not ISO_TIME.match(value):
        raise ValueError("must be an ISO 8601 date-time such as 2026-12-05T10:00:00Z")
    return value


TokenNamePath = Annotated[str, Path(pattern=TOKEN_NAME_PATTERN)]


@router.post("/tokens", response_model=CreatedToken, status_code=status.HTTP_201_CREATED, responses=errors(409))
def create_token(body: CreateToken, request: Request,
                 principal: Annotated[Principal, Depends(require_admin)]) -> CreatedToken:
    """A named token with a scope; its secret is in this answer only (the server keeps its SHA-256)."""
    request.state.audit_target = f"name={body.name} scope={body.scope}"
    expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    with appstate.sessions(request).begin() as session:
        secret, record = tokens.create(session, body.name, body.scope, expires, principal.name)
    return CreatedToken(token=secret, record=record)


@router.get("/tokens", response_model=list[TokenRecord], dependencies=[Depends(require_admin)])
def list_tokens(request: Request) -> list[TokenRecord]:
    with appstate.sessions(request).begin() as session:
        return tokens.list_tokens(session)


@router.delete("/tokens/{name}", response_model=TokenRecord, dependencies=[Depends(require_admin)])
def revoke_token(name: TokenNamePath, request: Request) -> TokenRecord:
    """Revoke NAME: it gets 401 from now on (the record stays, for the audit log)."""
    with appstate.sessions(request).begin() as session:
        return tokens.revoke(session, name)


@router.get("/audit", response_model=list[AuditRecord], dependencies=[Depends(require_admin)])
def audit_log(request: Request, since: Annotated[datetime | None, BeforeValidator(_iso_only), Query(
                  description="ISO 8601 time, e.g. 2026-12-05T10:00:00Z (UTC when no offset is given)")] = None,
              limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[AuditRecord]:
    """Changes made with API tokens, oldest first (the last ``limit`` of them, at or after ``since``)."""
    start = since
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    with appstate.sessions(request).begin() as session:
        return [AuditRecord(at=e.at, actor=e.actor, address=e.address, operation=e.operation, target=e.target,
                            status=e.status) for e in tokens.events(session, start, limit)]

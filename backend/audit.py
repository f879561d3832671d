"""The audit log: every change (a request other than GET/HEAD/OPTIONS) made with an API token.

A pure ASGI middleware records who (the token's name), what (the route's operation and its path parameters,
or the target a handler sets on ``request.state.audit_target``), when, from which address, and the status
answered; refusals for a missing scope (403) are recorded too. Routes added later are audited without a line
of their own. Secrets never enter the log: only names and path parameters do.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jetfleet.backend.auth import Principal
from jetfleet.backend.tokens import add_event

log = logging.getLogger("jetfleet.backend.audit")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditMiddleware:
    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        answered = 500

        async def watch(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            await self._record(scope, answered)

    async def _record(self, scope: Scope, answered: int) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        principal = state.get("principal")
        route = scope.get("route")
        if not isinstance(principal, Principal) or route is None:
            return
        params = scope.get("path_params") or {}
        target = state.get("audit_target") or " ".join(f"{key}={value}" for key, value in params.items())
        client: tuple[str, int] | None = scope.get("client")
        try:
            address = str(client[0]) if client else None
            await run_in_threadpool(add_event, self.sessions, actor=principal.name, address=address,
                                    operation=str(getattr(route, "name", None) or scope["path"])[:128],
                                    target=str(target)[:256], status=answered)
        except Exception as exc:  # the change itself is done; say loudly that its record is missing
            log.error("audit log write failed for %s by %s: %s", scope["path"], principal.name, exc)

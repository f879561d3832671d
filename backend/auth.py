"""Who may do what: scoped API tokens as a declarative dependency per route.

Every admin route declares the scope it needs with ``dependencies=[Depends(require_scope("deploy"))]``;
scopes nest (``admin`` > ``deploy`` > ``read``). The bootstrap ``--admin-token`` of ``backend serve`` is the
principal ``admin`` with scope ``admin``; named tokens (``jetfleet tokens create``) are stored as SHA-256.
Device routes declare ``Depends(device_caller)`` instead: the device token is checked by the handler.
A token outside its scope gets 403 naming the scope it needs; an unknown, expired or revoked one 401.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_BYTES = 32
Scope = Literal["read", "deploy", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "deploy", "admin")
BOOTSTRAP_ADMIN = "admin"  # the principal name of --admin-token in the audit log
_bearer = HTTPBearer(auto_error=False, description="an API token (jetfleet tokens create) or the bootstrap "
                                                   "admin token of 'backend serve'")


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope

    def allows(self, needed: Scope) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str | None, token_hash: str | None) -> bool:
    if not token or not token_hash:
        return False
    return hmac.compare_digest(hash_token(token), token_hash)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, token: str | None) -> Principal | None:
    """The principal holding ``token`` (None when no token was sent); 401 for a bad one."""
    if token is None:
        return None
    expected: str = request.app.state.settings.admin_token
    if hmac.compare_digest(token.encode(), expected.encode()):
        return Principal(BOOTSTRAP_ADMIN, "admin")
    from jetfleet.backend import tokens

    found = await run_in_threadpool(tokens.resolve, request.app.state.sessions, hash_token(token))
    if isinstance(found, str):
        raise _unauthorized(found)
    return found


def require_scope(needed: Scope) -> Callable[..., Any]:
    """A FastAPI dependency: the caller's token must carry ``needed`` (or a wider scope)."""

    async def check(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        principal = await authenticate(request, credentials.credentials if credentials else None)
        if principal is None:
            raise _unauthorized(f"an API token with scope '{needed}' is required (Authorization: Bearer <token>)")
        request.state.principal = principal
        if not principal.allows(needed):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this operation needs the '{needed}' scope; token '{principal.name}' has "
                                f"'{principal.scope}' (create one with: jetfleet tokens create NAME --scope {needed})")
        return principal

    check.jetfleet_scope = needed  # type: ignore[attr-defined]  # read by the route audit test and the docs
    check.__name__ = f"require_scope_{needed}"
    return check


require_read = require_scope("read")
require_deploy = require_scope("deploy")
require_admin = require_scope("admin")


def device_caller(authorization: Annotated[str | None, Header()] = None) -> str | None:
    """A FastAPI dependency of device routes: the device token the caller sent (checked by the handler)."""
    return bearer_token(authorization)


device_caller.jetfleet_scope = "device"  # type: ignore[attr-defined]


def declared_scope(dependencies: list[Any]) -> str | None:
    """The scope a route declares among its dependency callables (None: it declares none)."""
    for call in dependencies:
        scope = getattr(call, "jetfleet_scope", None)
        if scope is not None:
            return str(scope)
    return None

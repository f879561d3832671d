"""Wire models of the token and audit API (/api/v1/tokens, /api/v1/audit), shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jetfleet.protocol import json_number

TOKEN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TokenName = Annotated[str, Field(pattern=TOKEN_NAME_PATTERN)]
MAX_EXPIRY_SECONDS = 10 * 366 * 86400
ExpirySeconds = Annotated[int, Field(ge=1, le=MAX_EXPIRY_SECONDS), BeforeValidator(json_number)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreateToken(_Wire):
    name: TokenName
    scope: Literal["read", "deploy", "admin"]
    expires_in_seconds: ExpirySeconds | None = Field(
        default=None, description="None: the token never expires (revoke it with 'jetfleet tokens revoke')")


class TokenRecord(_Wire):
    name: str
    scope: Literal["read", "deploy", "admin"]
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class CreatedToken(_Wire):
    token: str = Field(description="the secret, shown this once (only its SHA-256 is stored)")
    record: TokenRecord


class AuditRecord(_Wire):
    at: datetime
    actor: str = Field(description="token name ('admin' is the bootstrap --admin-token)")
    address: str | None = Field(description="the client's address as the control plane saw it")
    operation: str = Field(description="the route's operation, e.g. move_tag")
    target: str = Field(description="what it acted on: the path parameters, e.g. name=resnet tag=prod")
    status: int = Field(description="the HTTP status answered")

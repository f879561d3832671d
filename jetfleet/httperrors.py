"""Translate httpx outcomes into jetfleet errors, at the boundary of every control-plane client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from jetfleet.errors import AuthError, BackendUnavailable, ConflictError, NotFoundError, PermanentError


@contextmanager
def translate_transport_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise BackendUnavailable(f"control plane {base_url} timed out") from exc
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"cannot reach control plane {base_url}: {exc or type(exc).__name__}") from exc


def raise_for_status(response: httpx.Response, base_url: str, *, auth_hint: str = "") -> None:
    """Raise the jetfleet error matching a non-2xx response (5xx and 429 are temporary)."""
    if response.is_success or response.status_code == 304:
        return
    detail = error_detail(response)
    code = response.status_code
    if code == 401:
        raise AuthError(f"{detail}{auth_hint}")
    if code == 404:
        raise NotFoundError(detail)
    if code == 409:
        raise ConflictError(detail)
    if code >= 500 or code == 429:
        raise BackendUnavailable(f"control plane {base_url} answered {code}: {detail}")
    raise PermanentError(f"control plane refused the request ({code}): {detail}")


def error_detail(response: httpx.Response) -> str:
    """FastAPI's ``detail``, with validation errors flattened to ``field: message``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
                         for d in detail)
    return str(detail)

"""Translate httpx outcomes into jetfleet errors, at the boundary of every control-plane client."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from jetfleet.errors import AuthError, BackendUnavailable, ConfigError, ConflictError, NotFoundError, PermanentError


def tls_context(ca_bundle: Path, key: str = "ca_bundle") -> ssl.SSLContext:
    """A verifying TLS context that trusts the CA certificates in ``ca_bundle`` (PEM), and only those."""
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except FileNotFoundError as exc:
        raise ConfigError(f"{ca_bundle}: no such file (the PEM file of the control plane's CA)", key=key) from exc
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{ca_bundle}: not a PEM CA certificate bundle ({exc})", key=key) from exc


def tls_verify(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """httpx's ``verify=``: the private CA when one is given, else the system's CAs."""
    return True if ca_bundle is None else tls_context(ca_bundle, key="--ca-bundle")


def _certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def translate_transport_errors(base_url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TimeoutException as exc:
        raise BackendUnavailable(f"control plane {base_url} timed out") from exc
    except httpx.TransportError as exc:
        problem = _certificate_problem(exc)
        if problem is not None:
            raise BackendUnavailable(
                f"refusing to talk to control plane {base_url}: its TLS certificate is not trusted "
                f"({problem.verify_message or problem.reason}); set ca_bundle (agent config) or --ca-bundle "
                "to the PEM file of the CA that signed it") from exc
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

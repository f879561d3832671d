"""The agent's HTTP clients, built so that they load the TLS trust store at most once.

Every ``httpx`` client builds its own SSL context and loads the CA bundle into it (1-3 MB of RSS each); the
agent has four clients and a 60 MB budget on small devices. Clients that only reach this host's own plain-HTTP
servers get no verifying context, and the others share one, created only when some URL is ``https``.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from jetfleet.httperrors import tls_context


@functools.cache
def shared_tls(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """One verifying context per trust store: the system's CAs, or only those in ``ca_bundle`` (a private CA)."""
    return httpx.create_ssl_context() if ca_bundle is None else tls_context(ca_bundle)


def tls_for(urls: Iterable[str], ca_bundle: Path | None = None) -> ssl.SSLContext | bool:
    """The shared verifying context when any URL uses TLS. For plain ``http://`` URLs no context is needed
    (httpx does not follow redirects unless asked, so such a client never reaches an ``https`` URL)."""
    return shared_tls(ca_bundle) if any(url.lower().startswith("https:") for url in urls) else False


def client_for(urls: Iterable[str], ca_bundle: Path | None = None, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=tls_for(urls, ca_bundle), **options)


def local_client(**options: Any) -> httpx.AsyncClient:
    """For this host's own plain-HTTP servers on loopback (model servers, the node's Traefik)."""
    return httpx.AsyncClient(verify=False, **options)

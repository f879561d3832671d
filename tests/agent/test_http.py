"""The agent's HTTP clients verify TLS wherever a URL uses it, and load the trust store once."""

from __future__ import annotations

import ssl

from jetfleet.agent.http import tls_for


def test_https_anywhere_gets_the_shared_verifying_context() -> None:
    context = tls_for(["http://10.0.0.21:8888", "https://controlplane.example:8443"])
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert tls_for(["HTTPS://other.example"]) is context


def test_plain_http_needs_no_trust_store() -> None:
    assert tls_for(["http://127.0.0.1:8000"]) is False
    assert tls_for([]) is False


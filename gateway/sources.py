"""Where a gateway's config comes from: a fleet file, or the control plane's live registry."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx

from jetfleet.gateway.fleet import Fleet, GatewaySettings, dynamic_settings_query
from jetfleet.gateway.render import Providers, render_dynamic, render_health_only, static_flags
from jetfleet.gateway.runner import GatewayRun
from jetfleet.httperrors import raise_for_status, tls_verify, translate_transport_errors
from jetfleet.protocol import DeviceRecord
from jetfleet.traefik.config import DynamicConfig, validate_dynamic

REGISTRY_PATH = "/api/v1/gateway/traefik"
TOKEN_HINT = " (pass the control plane's admin token with --token or JETFLEET_TOKEN)"


def health_url(settings: GatewaySettings) -> str:
    return f"http://127.0.0.1:{settings.health_port}"


def fleet_run(fleet: Fleet, config_path: Path) -> GatewayRun:
    """Traefik reads the whole rendered fleet from one watched file."""
    config = render_dynamic(fleet, health_url=health_url(fleet.gateway))
    flags = static_flags(fleet.gateway, Providers(file=str(config_path)))
    names = {node.url_for(role): node.name for node in fleet.nodes for role in node.roles}
    return GatewayRun(fleet.gateway, tuple(flags), config, config_path, names)


def registry_endpoint(backend_url: str, settings: GatewaySettings) -> str:
    query = dynamic_settings_query(settings)
    return backend_url.rstrip("/") + REGISTRY_PATH + (f"?{urlencode(query)}" if query else "")


def backend_run(backend_url: str, token: str, settings: GatewaySettings, config_path: Path,
                ca_bundle: Path | None = None) -> tuple[GatewayRun, DynamicConfig]:
    """Traefik polls the control plane; a local file adds the gateway's /health route.

    The control plane is asked once first, so that a wrong URL, token or setting fails here, before
    Traefik starts, instead of as a Traefik log line every second. Returns the plan and that answer.
    ``ca_bundle`` (a private CA's PEM) is trusted by both that first request and Traefik's HTTP provider.
    """
    endpoint = registry_endpoint(backend_url, settings)
    current = fetch_registry_config(endpoint, token, ca_bundle)
    ca = str(ca_bundle.resolve()) if ca_bundle is not None else None
    flags = static_flags(settings, Providers(file=str(config_path), http_endpoint=endpoint, http_token=token,
                                             http_ca=ca))
    return GatewayRun(settings, tuple(flags), render_health_only(health_url(settings)), config_path), current


def fetch_registry_config(endpoint: str, token: str, ca_bundle: Path | None = None,
                          timeout: float = 10.0) -> DynamicConfig:
    verify = tls_verify(ca_bundle)
    with translate_transport_errors(endpoint), httpx.Client(timeout=timeout, verify=verify) as client:
        response = client.get(endpoint, headers={"Authorization": f"Bearer {token}"})
    raise_for_status(response, endpoint, auth_hint=TOKEN_HINT)
    return validate_dynamic(response.json(), source=endpoint)


def fetch_devices(backend_url: str, token: str, ca_bundle: Path | None = None,
                  timeout: float = 5.0) -> list[DeviceRecord]:
    url = backend_url.rstrip("/") + "/api/v1/edge-devices"
    verify = tls_verify(ca_bundle)
    with translate_transport_errors(backend_url), httpx.Client(timeout=timeout, verify=verify) as client:
        response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    raise_for_status(response, backend_url, auth_hint=TOKEN_HINT)
    return [DeviceRecord.model_validate(item) for item in response.json()]

"""HTTPS control plane with a private CA the test makes: the CLI and a real agent trust it through ca_bundle /
--ca-bundle, and with the wrong CA they refuse to talk and say why."""

from __future__ import annotations

import datetime
import importlib
import ipaddress
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.ota.nodes import Node
from tests.support.backend import ADMIN_TOKEN
from tests.support.processes import ManagedProcess, free_port, jetfleet_cmd, subprocess_env, wait_until


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("jetfleet control plane")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def fleet_status(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd("fleet", "status", "--json", "--backend-url", url, "--token", ADMIN_TOKEN,
                                       *extra), capture_output=True, text=True, env=subprocess_env(), timeout=60)


def https_control_plane(tmp_path: Path) -> tuple[str, Path, ManagedProcess]:
    """A control plane serving https with a certificate of a new private CA: its URL, the CA's PEM, the process."""
    ca_pem, ca_key, ca = make_ca(tmp_path, "fleet-ca")
    cert, key = make_server_cert(tmp_path, ca_key, ca)
    port = free_port()
    argv = jetfleet_cmd("backend", "serve", "--port", str(port), "--database-url", f"sqlite:///{tmp_path / 'b.db'}",
                        "--admin-token", ADMIN_TOKEN, "--data-dir", str(tmp_path / "data"),
                        "--tls-cert", str(cert), "--tls-key", str(key))
    return f"https://127.0.0.1:{port}", ca_pem, ManagedProcess(argv, tmp_path / "backend.log", cwd=tmp_path)


def test_https_control_plane_with_a_private_ca(tmp_path: Path) -> None:
    url, ca_pem, backend = https_control_plane(tmp_path)
    wrong_pem, _, _ = make_ca(tmp_path, "other-ca")
    nodes: list[Node] = []
    trust = ssl.create_default_context(cafile=str(ca_pem))
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/health", verify=trust, timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 30, what="the https control plane")
        trusted = fleet_status(url, "--ca-bundle", str(ca_pem))
        assert trusted.returncode == 0 and trusted.stdout.strip() == "[]", trusted.stderr
        refused = fleet_status(url, "--ca-bundle", str(wrong_pem))
        assert refused.returncode == 2
        assert "TLS certificate is not trusted" in refused.stderr and "--ca-bundle" in refused.stderr, refused.stderr
        system_cas = fleet_status(url)  # the system's CAs do not know the private CA either
        assert system_cas.returncode == 2 and "not trusted" in system_cas.stderr

        good = Node(tmp_path / "nodes", url, "tls-good", ca_bundle=str(ca_pem), model_router="none").start()
        bad = Node(tmp_path / "nodes", url, "tls-bad", ca_bundle=str(wrong_pem), model_router="none").start()
        nodes += [good, bad]
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        def registered(device: str) -> bool:
            answer = httpx.get(f"{url}/api/v1/edge-devices/{device}", headers=admin, verify=trust)
            return answer.status_code == 200

        wait_until(lambda: registered("tls-good"), 60, what="the agent trusting the CA registers over https")
        wait_until(lambda: "TLS certificate is not trusted" in bad.log() + _file(bad.dir / "agent.log"), 60,
                   what="the agent with the wrong CA says why it refuses")
        assert not registered("tls-bad")
    finally:
        for node in nodes:
            node.stop()
        backend.stop()


def test_every_command_that_talks_to_the_control_plane_takes_ca_bundle() -> None:
    from jetfleet.cli import ROLES
    from jetfleet.cliapp import app

    for role in ROLES:
        importlib.import_module(f"jetfleet.{role}.cli").register(app)
    # the benchmarks load a control plane of their own making (or a given plain-http one on loopback)
    talking = {path: options for path, options in _commands(typer.main.get_command(app))
               if {"--backend-url", "--from-backend"} & options and not path.startswith("bench ")}
    assert {"jobs ls", "rollouts show", "drift status", "gateway run", "gateway monitor"} <= set(talking)
    assert [path for path, options in talking.items() if "--ca-bundle" not in options] == []


def _commands(command: Any, path: str = "") -> Iterator[tuple[str, set[str]]]:
    children = getattr(command, "commands", None)  # a group (typer's own click: no isinstance on click's classes)
    if children is not None:
        for name, child in children.items():
            yield from _commands(child, f"{path} {name}".strip())
        return
    yield path, {option for param in command.params for option in param.opts}


def test_gateway_and_jobs_cli_trust_a_private_ca(tmp_path: Path) -> None:
    url, ca_pem, backend = https_control_plane(tmp_path)
    ports = {name: free_port() for name in ("port", "api_port", "metrics_port", "health_port")}
    (tmp_path / "gateway.yml").write_text(yaml.safe_dump({"gateway": {**ports, "host": "127.0.0.1",
                                                                       "metrics_host": "127.0.0.1"}}))
    common = ["--backend-url", url, "--token", ADMIN_TOKEN, "--ca-bundle", str(ca_pem)]
    gateway: ManagedProcess | None = None
    try:
        wait_until(lambda: _cli("fleet", "status", *common).returncode == 0, 30, what="the https control plane")
        jobs = _cli("jobs", "ls", "--json", *common)
        assert jobs.returncode == 0 and json.loads(jobs.stdout) == [], jobs.stderr
        assert _cli("jobs", "ls", "--backend-url", url, "--token", ADMIN_TOKEN).returncode == 2  # system CAs only
        gateway = ManagedProcess(jetfleet_cmd("gateway", "run", "--from-backend", url, "--token", ADMIN_TOKEN,
                                              "--ca-bundle", str(ca_pem), "--settings", str(tmp_path / "gateway.yml")),
                                 tmp_path / "gateway.log", cwd=tmp_path)
        api = f"http://127.0.0.1:{ports['api_port']}/api/http/services"
        # Traefik's HTTP provider polls the https control plane trusting the CA: the registry's pools appear
        wait_until(lambda: "voice@http" in _text(api), 60, what="Traefik loading the registry over https")
    finally:
        if gateway is not None:
            gateway.stop()
        backend.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd(*args), capture_output=True, text=True, env=subprocess_env(), timeout=60)


def _text(url: str) -> str:
    try:
        return httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return ""


def _file(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_tls_options_are_checked_before_start(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    half = subprocess.run(jetfleet_cmd("backend", "serve", "--admin-token", ADMIN_TOKEN, "--tls-cert",
                                       str(tmp_path / "cert.pem")), capture_output=True, text=True,
                          env=subprocess_env(), timeout=60, cwd=tmp_path)
    assert half.returncode == 2 and "give both --tls-cert and --tls-key" in half.stderr
    broken = subprocess.run(jetfleet_cmd("backend", "serve", "--admin-token", ADMIN_TOKEN, "--tls-cert",
                                         str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "cert.pem")),
                            capture_output=True, text=True, env=subprocess_env(), timeout=60, cwd=tmp_path)
    assert broken.returncode == 2 and "do not load as a PEM certificate" in broken.stderr


@pytest.mark.parametrize("value", ["missing.pem"])
def test_agent_ca_bundle_must_exist(tmp_path: Path, value: str) -> None:
    from jetfleet.agent.config import AgentConfig

    with pytest.raises(ValueError, match="ca_bundle"):
        AgentConfig(backend_url="https://127.0.0.1:1", ca_bundle=tmp_path / value)

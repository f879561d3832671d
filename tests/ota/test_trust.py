"""Manifest acceptance: signatures, expiry, rollback/freeze protection, TOFU and config pins, key rotation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jetfleet.agent.ota.trust import ManifestGate, TrustStore
from jetfleet.errors import ConfigError
from jetfleet.manifest import DesiredModel, ManifestError, ManifestPayload, key_id, public_key_b64, sign_payload
from jetfleet.protocol import SignedManifest

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
MODEL = DesiredModel(name="det", version=2, tag="prod", sha256="a" * 64, size_bytes=10, framework="onnx",
                     filename="model.onnx")


def signed(key: Ed25519PrivateKey, serial: int, *, device: str = "dev-1", models: tuple[DesiredModel, ...] = (MODEL,),
           expires: timedelta = timedelta(hours=1), next_keys: tuple[str, ...] = ()) -> SignedManifest:
    payload = ManifestPayload(device_id=device, serial=serial, issued_at=NOW, expires_at=NOW + expires,
                              models=models, next_keys=next_keys)
    text, signature = sign_payload(payload, key)
    return SignedManifest(payload=text, signature=signature, key_id=key_id(pub(key)))


def pub(key: Ed25519PrivateKey) -> str:
    return public_key_b64(key.public_key())


def gate(tmp_path: Path, configured: str | None = None) -> ManifestGate:
    return ManifestGate(TrustStore(tmp_path / "trust.json"), "dev-1", configured)


def refused(g: ManifestGate, manifest: SignedManifest, now: datetime = NOW) -> str:
    with pytest.raises(ManifestError) as error:
        g.accept(manifest, now)
    return error.value.code


def test_tofu_pins_the_registration_key_and_refuses_others(tmp_path: Path) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    g = gate(tmp_path)
    assert refused(g, signed(key, 1)) == "VERIFY_ERROR/NO_TRUSTED_KEY"
    g.pin_on_first_use(pub(key))
    assert g.accept(signed(key, 5), NOW).models == (MODEL,)
    g.pin_on_first_use(pub(other))  # a later registration cannot replace the pin
    assert refused(g, signed(other, 6)) == "VERIFY_ERROR/UNKNOWN_KEY"
    assert (tmp_path / "trust.json").stat().st_mode & 0o777 == 0o600
    restarted = gate(tmp_path)
    assert restarted.last_accepted(NOW) is not None and restarted.last_accepted(NOW).serial == 5  # type: ignore[union-attr]


def test_tampered_expired_old_foreign_manifests_are_refused(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    g = gate(tmp_path, configured=pub(key))
    good = signed(key, 10)
    tampered = good.model_copy(update={"payload": good.payload.replace('"version":2', '"version":3')})
    assert refused(g, tampered) == "VERIFY_ERROR/BAD_SIGNATURE"
    assert refused(g, good.model_copy(update={"signature": "!!"})) == "VERIFY_ERROR/BAD_SIGNATURE"
    assert refused(g, signed(key, 10, expires=-timedelta(minutes=10))) == "VERIFY_ERROR/EXPIRED"
    assert refused(g, signed(key, 10, device="dev-2")) == "VERIFY_ERROR/WRONG_DEVICE"
    g.accept(good, NOW)
    assert refused(g, signed(key, 9)) == "VERIFY_ERROR/ROLLBACK"
    assert refused(g, signed(key, 10, models=())) == "VERIFY_ERROR/SERIAL_REUSE"
    assert g.accept(signed(key, 10, expires=timedelta(hours=5)), NOW).serial == 10  # re-signed: fine
    # the stored manifest is re-verified after a restart, and not used once expired
    assert gate(tmp_path, configured=pub(key)).last_accepted(NOW + timedelta(hours=6)) is None


def test_rotation_through_announced_next_key(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    g = gate(tmp_path, configured=pub(old))
    assert refused(g, signed(new, 2)) == "VERIFY_ERROR/UNKNOWN_KEY"
    g.accept(signed(old, 2, next_keys=(pub(new),)), NOW)
    assert len(g.trusted_key_ids) == 2
    g.accept(signed(new, 3), NOW)
    assert refused(g, signed(old, 4)) == "VERIFY_ERROR/UNKNOWN_KEY"  # the old key is dropped after the switch
    # a restart with the same configured key keeps the rotated trust
    assert gate(tmp_path, configured=pub(old)).accept(signed(new, 4), NOW).serial == 4


def test_changing_the_configured_key_re_pins(tmp_path: Path) -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    gate(tmp_path, configured=pub(first)).accept(signed(first, 100), NOW)
    g = gate(tmp_path, configured=pub(second))  # an admin re-pins a device
    assert g.accept(signed(second, 1), NOW).serial == 1  # new authority: serial floor reset


def test_bad_configured_key_and_unreadable_state_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="manifest_public_key"):
        gate(tmp_path, configured="bm90IGEga2V5")
    (tmp_path / "trust.json").write_text(json.dumps({"origin": "x"}))
    with pytest.raises(ConfigError, match=r"trust\.json"):
        gate(tmp_path)

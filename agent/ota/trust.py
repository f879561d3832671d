"""Which manifests the agent accepts: pinned keys, expiry, serials, key rotation (``state_dir/ota/trust.json``).

* The trust anchor is the config key ``manifest_public_key``; when it is null, the key the control plane
  gave at registration is pinned on first use (logged as a warning) and kept.
* A manifest must be signed by a trusted key, name this device, not be expired, and have a serial not
  below the last accepted one (an equal serial must carry the same desired models).
* After accepting a manifest signed by key K, the agent trusts K and the keys K announced in
  ``next_keys``: that is how a control plane rotates keys without stranding devices. Changing
  ``manifest_public_key`` in the config re-pins (and resets the serial floor).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from jetfleet.errors import AuthError, ConfigError
from jetfleet.files import write_atomic
from jetfleet.manifest import ManifestError, ManifestPayload, key_id, load_public_key, verify_signature
from jetfleet.protocol import SignedManifest

log = logging.getLogger("jetfleet.agent.ota")
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class TrustState:
    origin: str  # "config:<key id>" or "tofu:<key id>"
    keys: dict[str, str] = field(default_factory=dict)  # key id -> base64 public key
    serial: int = 0
    digest: str | None = None
    manifest: SignedManifest | None = None  # the last accepted one (the target survives restarts)


class TrustStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> TrustState | None:
        try:
            data = json.loads(self.path.read_text())
            manifest = data.get("manifest")
            return TrustState(origin=data["origin"], keys=dict(data["keys"]), serial=int(data["serial"]),
                              digest=data.get("digest"),
                              manifest=SignedManifest.model_validate(manifest) if manifest else None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"unreadable manifest trust file {self.path}: {exc}; fix it, or delete it to pin "
                              "the control plane's key again", key="state_dir") from exc

    def save(self, state: TrustState) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = {"origin": state.origin, "keys": state.keys, "serial": state.serial, "digest": state.digest,
                "manifest": state.manifest.model_dump() if state.manifest else None}
        write_atomic(self.path, json.dumps(body))


class ManifestGate:
    """Verifies manifests against the pinned keys and remembers the last accepted one."""

    def __init__(self, store: TrustStore, device_id: str, configured_key: str | None) -> None:
        self.store = store
        self.device_id = device_id
        self.state = self._initial(configured_key)

    def _initial(self, configured_key: str | None) -> TrustState | None:
        stored = self.store.load()
        if configured_key is None:
            return stored
        try:
            load_public_key(configured_key)
        except AuthError as exc:
            raise ConfigError(str(exc), key="manifest_public_key") from exc
        origin = f"config:{key_id(configured_key)}"
        if stored is not None and stored.origin == origin:
            return stored  # may have rotated to announced keys since
        if stored is not None:
            log.warning("manifest_public_key changed: re-pinning manifest key %s", key_id(configured_key))
        state = TrustState(origin=origin, keys={key_id(configured_key): configured_key})
        self.store.save(state)
        return state

    @property
    def trusted_key_ids(self) -> list[str]:
        return sorted(self.state.keys) if self.state else []

    def pin_on_first_use(self, public_key: str | None) -> None:
        """Registration told us the control plane's key: pin it if nothing is pinned yet (TOFU)."""
        if public_key is None:
            return
        kid = key_id(public_key)
        if self.state is None:
            log.warning("trusting the control plane's manifest key %s on first use (set manifest_public_key in "
                        "the config to pin it explicitly)", kid)
            self.state = TrustState(origin=f"tofu:{kid}", keys={kid: public_key})
            self.store.save(self.state)
        elif kid not in self.state.keys:
            log.error("the control plane presents manifest key %s, which this device does not trust (trusted: %s); "
                      "not re-pinning", kid, ", ".join(self.trusted_key_ids))

    def accept(self, signed: SignedManifest, now: datetime) -> ManifestPayload:
        """The verified payload; raises :class:`ManifestError` with a ``VERIFY_ERROR/...`` code otherwise."""
        if self.state is None:
            raise ManifestError("VERIFY_ERROR/NO_TRUSTED_KEY", "no manifest key is pinned (the control plane gave "
                                "none at registration and manifest_public_key is null)")
        payload = verify_signature(signed.payload, signed.signature, signed.key_id, self.state.keys)
        self._check_policy(payload, now)
        if signed == self.state.manifest:
            return payload  # the same manifest again (every answer carries it): nothing to record
        keys = {signed.key_id: self.state.keys[signed.key_id]}
        for announced in payload.next_keys:
            keys[key_id(announced)] = announced
        if set(keys) != set(self.state.keys):
            log.warning("manifest keys now trusted: %s", ", ".join(sorted(keys)))
        self.state = replace(self.state, keys=keys, serial=payload.serial, digest=payload.desired_digest(),
                             manifest=signed)
        self.store.save(self.state)
        return payload

    def _check_policy(self, payload: ManifestPayload, now: datetime) -> None:
        assert self.state is not None
        if payload.device_id != self.device_id:
            raise ManifestError("VERIFY_ERROR/WRONG_DEVICE", f"manifest is for device {payload.device_id!r}")
        if payload.expires_at + CLOCK_SKEW < now:
            raise ManifestError("VERIFY_ERROR/EXPIRED", f"manifest expired at {payload.expires_at.isoformat()}")
        if payload.serial < self.state.serial:
            raise ManifestError("VERIFY_ERROR/ROLLBACK", f"manifest serial {payload.serial} is older than the "
                                f"accepted {self.state.serial}")
        if payload.serial == self.state.serial and self.state.digest not in (None, payload.desired_digest()):
            raise ManifestError("VERIFY_ERROR/SERIAL_REUSE", f"serial {payload.serial} was accepted with other "
                                "desired models")

    def last_accepted(self, now: datetime) -> ManifestPayload | None:
        """The last accepted manifest while it is still valid (re-verified: the file could be edited)."""
        if self.state is None or self.state.manifest is None:
            return None
        signed = self.state.manifest
        try:
            payload = verify_signature(signed.payload, signed.signature, signed.key_id, self.state.keys)
        except ManifestError as exc:
            log.error("ignoring the stored manifest: %s", exc)
            return None
        if payload.expires_at + CLOCK_SKEW < now or payload.device_id != self.device_id:
            return None
        return payload


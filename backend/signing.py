"""The control plane's manifest signing keys: Ed25519, PEM (PKCS#8) files of mode 0600.

``--signing-key`` signs every manifest and is created on first start when absent. During a key
rotation ``--previous-signing-key`` keeps signing for the devices that do not trust the new key yet,
and announces the new one to them (see :meth:`Signer.choose` and docs/ota.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from jetfleet.errors import ConfigError
from jetfleet.manifest import key_id, public_key_b64


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public_b64: str
    key_id: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        public = public_key_b64(private.public_key())
        return cls(private, public, key_id(public))


def load_key(path: Path, *, option: str = "--signing-key") -> SigningKey:
    """Read an existing key file; the error names the option and the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"no signing key at {path}", key=option) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read signing key {path}: {exc.strerror}", key=option) from exc
    try:
        private = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}", key=option) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(private).__name__}, not an Ed25519 key", key=option)
    return SigningKey.of(private)


def create_key(path: Path, *, option: str = "--signing-key") -> SigningKey:
    """Write a new key to ``path`` (mode 0600, never overwriting an existing file)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; refusing to overwrite a signing key", key=option) from exc
    except OSError as exc:
        raise ConfigError(f"cannot create signing key {path}: {exc.strerror}", key=option) from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return SigningKey.of(private)


def load_or_create_key(path: Path) -> tuple[SigningKey, bool]:
    """The key at ``path``, creating it when absent; the flag says whether it was created."""
    if path.exists():
        return load_key(path), False
    return create_key(path), True


@dataclass(frozen=True)
class Signer:
    """The current key and, during a rotation, the previous one."""

    current: SigningKey
    previous: SigningKey | None = None

    def choose(self, trusted_key_ids: list[str]) -> tuple[SigningKey, tuple[str, ...]]:
        """The key to sign a device's manifest with, and the keys to announce in ``next_keys``.

        A device that does not report trusting the current key but trusts the previous one gets a
        manifest signed by the previous key that announces the current one; once it reports trusting
        the current key, it gets manifests signed by it. Devices reporting nothing (new ones, which pin
        the current key at registration) get the current key.
        """
        previous = self.previous
        if previous is not None and self.current.key_id not in trusted_key_ids \
                and previous.key_id in trusted_key_ids:
            return previous, (self.current.public_b64,)
        return self.current, ()

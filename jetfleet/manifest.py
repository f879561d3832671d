"""Signed desired-state manifests ("TUF-lite"), shared by the control plane (signer) and the agent (verifier).

A manifest says which model versions one device should run. The control plane signs the canonical
JSON of :class:`ManifestPayload` with Ed25519 and sends it in every heartbeat answer as a
:class:`jetfleet.protocol.SignedManifest`::

    {"payload": "<canonical JSON>", "signature": "<base64 Ed25519 signature of the payload bytes>",
     "key_id": "<first 16 hex of sha256(raw public key)>"}

The agent accepts a payload only when it is signed by a key it trusts, names this device, has not
expired, and its ``serial`` is not lower than the last one it accepted (equal serials must carry the
same desired state). ``next_keys`` announces the public keys that will sign future manifests (key
rotation, see docs/ota.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jetfleet.errors import AuthError
from jetfleet.jobs import DesiredJob
from jetfleet.modelfiles.layout import FRAMEWORKS as FRAMEWORKS  # re-exported: manifests name these
from jetfleet.modelfiles.layout import NAME_PATTERN as MODEL_NAME_PATTERN
from jetfleet.modelfiles.layout import Framework as Framework

MANIFEST_TYPE = "jetfleet-manifest"
__all__ = ["FRAMEWORKS", "MODEL_NAME_PATTERN", "TAG_PATTERN", "Framework"]
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
Version = Annotated[int, Field(ge=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpecEntry(_Frozen):
    name: str
    datatype: str
    shape: tuple[int, ...]


class BlobRef(_Frozen):
    """Another content-addressed file of the registry (e.g. a golden input)."""

    sha256: Sha256Hex
    size_bytes: Annotated[int, Field(ge=0)]
    filename: str


class GoldenCheck(_Frozen):
    """A known input and its expected output: the health gate runs the input and compares within tolerance."""

    input: BlobRef
    output: BlobRef
    rtol: Annotated[float, Field(ge=0)] = 1e-3
    atol: Annotated[float, Field(ge=0)] = 1e-5


class DesiredModel(_Frozen):
    """One model version the device should serve."""

    name: ModelName
    version: Version
    tag: str
    sha256: Sha256Hex
    size_bytes: Annotated[int, Field(ge=0)]
    framework: Framework
    filename: Annotated[str, Field(pattern=r"^[^/\\]+$", description="artifact file name in the version dir")]
    inputs: tuple[TensorSpecEntry, ...] | None = None
    outputs: tuple[TensorSpecEntry, ...] | None = None
    golden: GoldenCheck | None = None
    generation: Annotated[int, Field(ge=0)] = Field(
        default=0, description="bumped by every 'models deploy': an explicit retry of a failed version")


class ManifestPayload(_Frozen):
    type: Literal["jetfleet-manifest"] = "jetfleet-manifest"
    format: Literal[1] = 1
    device_id: str
    serial: Annotated[int, Field(ge=1)]
    issued_at: datetime
    expires_at: datetime
    models: tuple[DesiredModel, ...] = ()
    jobs: tuple[DesiredJob, ...] = ()
    next_keys: tuple[str, ...] = ()

    def desired_digest(self) -> str:
        """Digest of what the device should run: equal serials must have equal digests (expiry and
        ``next_keys`` may differ: re-signing and key rotation keep the serial)."""
        return hashlib.sha256(canonical_json([m.model_dump(mode="json") for m in self.models])).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode_payload(payload: ManifestPayload) -> str:
    return canonical_json(payload.model_dump(mode="json")).decode()


def public_key_b64(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_id(public_b64: str) -> str:
    """A short, stable name for a public key: the first 16 hex digits of sha256 of its raw bytes."""
    return hashlib.sha256(_b64(public_b64, "public key")).hexdigest()[:16]


def load_public_key(public_b64: str) -> Ed25519PublicKey:
    raw = _b64(public_b64, "public key")
    if len(raw) != 32:
        raise AuthError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_payload(payload: ManifestPayload, key: Ed25519PrivateKey) -> tuple[str, str]:
    """``(payload_text, signature_b64)`` for a :class:`jetfleet.protocol.SignedManifest`."""
    text = encode_payload(payload)
    return text, base64.b64encode(key.sign(text.encode())).decode()


class ManifestError(AuthError):
    """A manifest was refused; ``code`` is the reason reported to the control plane."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def verify_signature(payload: str, signature: str, signer_key_id: str, trusted: dict[str, str]) -> ManifestPayload:
    """Check the signature against ``trusted`` (key id -> base64 public key) and parse the payload.

    Raises :class:`ManifestError` with code ``VERIFY_ERROR/UNKNOWN_KEY``, ``.../BAD_SIGNATURE`` or
    ``.../MALFORMED``. Expiry, device and serial are the caller's policy.
    """
    public = trusted.get(signer_key_id)
    if public is None:
        raise ManifestError("VERIFY_ERROR/UNKNOWN_KEY", f"signed by key {signer_key_id}, which this device does "
                            f"not trust (trusted: {', '.join(sorted(trusted)) or 'none'})")
    try:
        load_public_key(public).verify(_b64(signature, "signature"), payload.encode())
    except (InvalidSignature, AuthError) as exc:
        raise ManifestError("VERIFY_ERROR/BAD_SIGNATURE", f"the signature does not match the payload for key "
                            f"{signer_key_id}") from exc
    try:
        return ManifestPayload.model_validate_json(payload)
    except ValidationError as exc:
        raise ManifestError("VERIFY_ERROR/MALFORMED", f"signed payload is not a valid manifest: {exc}") from exc


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError(f"{what} is not valid base64") from exc

"""Wire models of the device API (/api/v1/edge-devices), shared by the agent and the control plane.

Units follow the Prometheus names so that heartbeats and dashboards agree: ratios are 0..1,
sizes are bytes, temperatures celsius, power watts. Unknown fields are refused (422) so that a
typo in a client never passes silently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from jetfleet.errors import ConfigError
from jetfleet.jobs import OutboxStatus
from jetfleet.selectors import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, check_label

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN, description="Stable device id (MAC-derived)")]


def json_number(value: object) -> object:
    """JSON Schema's number: a JSON true is not 1 and the text "30" is not 30 (pydantic's lax mode says they are)."""
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON number")
    return value


# strict floats, and ints that take 285.0 (an integer to JSON Schema) but not true or "285"
Ratio = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]
NonNegInt = Annotated[int, Field(ge=0), BeforeValidator(json_number)]
Seconds = Annotated[float, Field(gt=0, le=3600, strict=True)]
NonNegFloat = Annotated[float, Field(ge=0.0, strict=True)]
LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN)]
# additionalProperties: pydantic writes the key pattern as patternProperties only, which lets any other key pass.
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=64, description="Device labels for selectors",
                                                     json_schema_extra={"additionalProperties": False})]


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuInfo(WireModel):
    name: str
    type: Literal["integrated", "discrete"]
    memory_total_bytes: NonNegInt | None = None
    compute_capability: str | None = None


class HardwareInfo(WireModel):
    platform: Literal["jetson", "x86_64", "aarch64", "other"]
    arch: str
    cpu_model: str | None = None
    cpu_cores: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None
    disk_total_bytes: NonNegInt | None = None
    kernel: str | None = None
    model: str | None = Field(default=None, description="/proc/device-tree/model")
    module: str | None = Field(default=None, description="Module name from the part number, e.g. 'AGX Orin 32GB'")
    soc: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    cuda: str | None = None
    tensorrt: str | None = None
    gpus: list[GpuInfo] = Field(default_factory=list)


class DeviceConfig(WireModel):
    """Settings the control plane hands to a device; the device applies them at run time."""

    heartbeat_interval: Seconds
    offline_after_missed: Annotated[int, Field(ge=1), BeforeValidator(json_number)] = 3


class ServiceEndpoint(WireModel):
    """A service this node offers besides models (e.g. the voice server), as the gateway should reach it."""

    role: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    # printable ASCII only (a host is punycode, a path percent-encoded); explicit ranges, not \s or \S, which
    # Python and JSON Schema's ECMA regexes read differently (U+0085 is a space to one, not to the other)
    url: Annotated[str, Field(pattern=r"^https?://[!-.0-~]+(/[!-~]*)?$", max_length=256)]
    healthy: Annotated[bool, Field(strict=True)] | None = None
    # How the gateway's live registry balances this service (a fleet file's node `weight` and `backup`):
    # its share of the role's traffic, and whether it only takes traffic while every primary is down.
    weight: Annotated[int, Field(ge=1, le=1000)] | None = None
    backup: bool | None = None


class ModelStatus(WireModel):
    """What a device actually runs for one model (reported, never assumed by the control plane)."""

    name: str
    serving_version: NonNegInt | None = None
    last_known_good: NonNegInt | None = None
    target_version: NonNegInt | None = None
    state: str | None = None
    reason: str | None = None
    endpoint: str | None = None
    progress_ratio: Ratio | None = Field(default=None, description="download progress while downloading")
    # What the serving version's model server measured over the agent's recent window (None: no requests).
    error_ratio: Ratio | None = Field(default=None, description="failed / all inference requests, recent window")
    p50_ms: NonNegFloat | None = None
    p95_ms: NonNegFloat | None = None
    p99_ms: NonNegFloat | None = Field(default=None, description="latency percentiles of successful requests")
    lock_held_seconds: NonNegFloat | None = Field(default=None, description="while an update lock defers a swap")


class Metrics(WireModel):
    """The compact metric summary carried by each heartbeat (the full set is on the agent's /metrics)."""

    cpu_utilization_ratio: Ratio | None = None
    memory_used_bytes: NonNegInt | None = None
    memory_total_bytes: NonNegInt | None = None
    swap_used_bytes: NonNegInt | None = None
    swap_total_bytes: NonNegInt | None = None
    disk_used_bytes: NonNegInt | None = None
    disk_total_bytes: NonNegInt | None = None
    gpu_utilization_ratio: Ratio | None = None
    temperatures_celsius: dict[str, Annotated[float, Field(strict=True)]] = Field(default_factory=dict)
    power_watts: dict[str, Annotated[float, Field(strict=True)]] = Field(default_factory=dict)
    uptime_seconds: Annotated[float, Field(ge=0, strict=True)] | None = None


class RegisterRequest(WireModel):
    device_id: DeviceId
    device_name: Annotated[str, Field(min_length=1, max_length=128)]
    device_type: Annotated[str, Field(min_length=1, max_length=64)] = "jetson_orin"
    location: Annotated[str, Field(max_length=128)] = "Unknown"
    hardware: HardwareInfo
    agent_version: str | None = None
    heartbeat_interval: Seconds = 30.0
    labels: Labels = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        return valid_labels(value)


def valid_labels(value: dict[str, str]) -> dict[str, str]:
    for name, text in value.items():
        try:
            check_label(name, text)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
    return value


class DeviceRecord(WireModel):
    device_id: str
    device_name: str
    device_type: str
    location: str
    status: Literal["online", "offline"]
    registered_at: datetime
    last_heartbeat: datetime | None
    metrics: Metrics | None
    hardware: HardwareInfo
    config: DeviceConfig
    agent_version: str | None = None
    models: list[ModelStatus] = Field(default_factory=list)
    services: list[ServiceEndpoint] = Field(default_factory=list)
    manifest_keys: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    outbox: OutboxStatus | None = Field(default=None, description="the results outbox, as of the last heartbeat")


class RegisterResponse(WireModel):
    device: DeviceRecord
    device_token: str | None = Field(
        default=None, description="Returned once, when the device id is first claimed; stored hashed."
    )
    config: DeviceConfig
    manifest_public_key: str | None = Field(
        default=None, description="Ed25519 public key (base64) that signs desired-state manifests"
    )


class Heartbeat(WireModel):
    metrics: Metrics = Field(default_factory=Metrics)
    models: list[ModelStatus] = Field(default_factory=list)
    services: list[ServiceEndpoint] = Field(default_factory=list)
    agent_version: str | None = None
    manifest_keys: list[str] = Field(default_factory=list,
                                     description="ids of the manifest signing keys this device trusts")
    outbox: OutboxStatus | None = None


class OtaItem(WireModel):
    """One pending model update: the desired version differs from what the device reports serving."""

    model: str
    version: NonNegInt
    sha256: str
    size_bytes: NonNegInt
    current_version: NonNegInt | None = None


class HeartbeatResponse(WireModel):
    ota: list[OtaItem] = Field(default_factory=list)
    config: DeviceConfig
    manifest: SignedManifest | None = None


class SignedManifest(WireModel):
    """A desired-state manifest: canonical JSON ``payload`` and its Ed25519 ``signature`` (base64)."""

    payload: str
    signature: str
    key_id: str


HeartbeatResponse.model_rebuild()

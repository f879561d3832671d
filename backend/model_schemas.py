"""Wire models of the model registry's admin API (/api/v1/models), shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from jetfleet.manifest import FRAMEWORKS, MODEL_NAME_PATTERN, TAG_PATTERN, Framework, GoldenCheck, TensorSpecEntry
from jetfleet.protocol import DEVICE_ID_PATTERN, json_number
from jetfleet.selectors import SELECTOR_PATTERN

__all__ = ["FRAMEWORKS", "MODEL_NAME_PATTERN", "TAG_PATTERN"]

Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
UploadId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UploadResult(_Wire):
    upload_id: str
    sha256: str
    size_bytes: int


class CreateVersion(_Wire):
    """Turn uploads into a new version of a model (and optionally point a tag at it)."""

    artifact_upload: UploadId
    filename: Annotated[str, Field(min_length=1, max_length=255, description="the pushed file's name")]
    framework: Framework | None = Field(default=None, description="default: from the file name")
    tag: Tag | None = None
    golden_input_upload: UploadId | None = None
    golden_output_upload: UploadId | None = None
    golden_input_filename: str | None = None
    golden_output_filename: str | None = None
    golden_rtol: Annotated[float, Field(ge=0, le=1, strict=True)] = 1e-3
    golden_atol: Annotated[float, Field(ge=0, strict=True)] = 1e-5
    reference_upload: UploadId | None = Field(default=None, description="drift reference (.npz, one array per "
                                                                        "input name, rows = samples)")
    reference_filename: str | None = None


class VersionRecord(_Wire):
    name: str
    version: int
    sha256: str
    size_bytes: int
    framework: Framework
    filename: str
    inputs: tuple[TensorSpecEntry, ...] | None = None
    outputs: tuple[TensorSpecEntry, ...] | None = None
    golden: GoldenCheck | None = None
    created_at: datetime
    tags: list[str] = Field(default_factory=list)


class DeploymentRecord(_Wire):
    device_id: str
    tag: str
    generation: int


class ModelSummary(_Wire):
    name: str
    versions: int
    latest: int
    tags: dict[str, int]
    devices: int
    updated_at: datetime


class ModelDetail(_Wire):
    name: str
    versions: list[VersionRecord]
    tags: dict[str, int]
    deployments: list[DeploymentRecord]


class MoveTag(_Wire):
    version: Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(json_number)]


class TagRecord(_Wire):
    name: str
    tag: str
    version: int
    previous_version: int | None
    devices: list[str]


# "device ids, all=true, or a selector" as JSON Schema, so that generated clients and fuzzers know it too.
DEVICE_TARGET_SHAPES: dict[str, Any] = {"oneOf": [
    {"properties": {"all": {"const": True}, "devices": {"maxItems": 0}, "selector": {"type": "null"}},
     "required": ["all"]},
    {"properties": {"all": {"const": False}, "devices": {"minItems": 1}, "selector": {"type": "null"}},
     "required": ["devices"]},
    {"properties": {"all": {"const": False}, "devices": {"maxItems": 0}, "selector": {"type": "string"}},
     "required": ["selector"]},
]}


class _DevicesOrAll(_Wire):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=DEVICE_TARGET_SHAPES)
    devices: list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]] = Field(default_factory=list)
    all: Annotated[bool, Field(strict=True)] = False
    selector: Annotated[str, Field(max_length=1000, pattern=SELECTOR_PATTERN)] | None = Field(
        default=None, description="label selector, e.g. 'role=vision,site in (a, b)'")

    @model_validator(mode="after")
    def _one_of(self) -> _DevicesOrAll:
        if [bool(self.devices), self.all, self.selector is not None].count(True) != 1:
            raise ValueError("devices: give exactly one of: device ids, all=true, or a selector")
        return self


class DeployRequest(_DevicesOrAll):
    tag: Tag


class DeployResult(_Wire):
    name: str
    tag: str
    version: int
    devices: list[str]


class UndeployRequest(_DevicesOrAll):
    pass


class DeviceModelState(_Wire):
    """One device's view of a model: ``version`` is what it actually serves (from its heartbeats)."""

    device_id: str
    version: int | None
    state: str | None
    reason: str | None
    endpoint: str | None
    tag: str | None = None
    target_version: int | None = None
    last_known_good: int | None = None
    online: bool = False


class ModelStatusReport(_Wire):
    model: str
    devices: list[DeviceModelState]

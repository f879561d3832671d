"""Wire models of the jobs admin API (/api/v1/jobs), shared by the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from jetfleet.backend.model_schemas import DEVICE_TARGET_SHAPES
from jetfleet.jobs import JobName, ScheduleKind
from jetfleet.manifest import MODEL_NAME_PATTERN, TAG_PATTERN
from jetfleet.protocol import DEVICE_ID_PATTERN
from jetfleet.selectors import SELECTOR_PATTERN

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
MIN_EVERY_SECONDS = 1.0


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Which schedule fields go together, as JSON Schema (generated clients and fuzzers know it too).
_SCHEDULE_SHAPES: dict[str, Any] = {"oneOf": [
    {"properties": {"schedule": {"const": "every"}, "every_seconds": {"type": "number"}, "cron": {"type": "null"}},
     "required": ["schedule", "every_seconds"]},
    {"properties": {"schedule": {"const": "cron"}, "every_seconds": {"type": "null"}, "cron": {"type": "string"}},
     "required": ["schedule", "cron"]},
    {"properties": {"schedule": {"const": "on_demand"}, "every_seconds": {"type": "null"}, "cron": {"type": "null"}},
     "required": ["schedule"]},
]}


class CreateJob(_Wire):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"allOf": [_SCHEDULE_SHAPES,
                                                                                      DEVICE_TARGET_SHAPES]})
    name: JobName
    model: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    tag: Annotated[str, Field(pattern=TAG_PATTERN)]
    input_dir: Annotated[str, Field(min_length=1, max_length=4096)]
    schedule: ScheduleKind
    every_seconds: Annotated[float, Field(ge=MIN_EVERY_SECONDS, le=366 * 86400)] | None = None
    cron: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    devices: list[DeviceId] = Field(default_factory=list)
    all: Annotated[bool, Field(strict=True)] = False
    selector: Annotated[str, Field(max_length=1000, pattern=SELECTOR_PATTERN)] | None = Field(
        default=None, description="label selector, e.g. 'role=vision,site in (a, b)': the devices matching it "
                                  "now and later (a device labelled later gets the job)")


class JobRecord(_Wire):
    name: str
    model: str
    tag: str
    version: int | None = Field(description="the version the tag points at now")
    input_dir: str
    schedule: ScheduleKind
    every_seconds: float | None
    cron: str | None
    target: str = Field(description="'devices' (the listed ones), 'all' or 'selector'")
    selector: str | None = Field(default=None, description="the label selector of a 'selector' job")
    devices: list[str] = Field(description="the devices that run it now")
    run_generation: int
    results: int = 0
    created_at: datetime
    updated_at: datetime


class RunJob(_Wire):
    devices: list[DeviceId] = Field(default_factory=list, description="empty: every device of the job")


class RunResult(_Wire):
    name: str
    devices: list[str]


class ResultRecord(_Wire):
    """One stored result, as ``jobs results`` prints it."""

    id: int
    key: str
    device_id: str
    job: str
    run_id: str
    input: str
    input_sha256: str
    model: str
    version: int | None
    outputs: dict[str, Any] | None
    error: str | None
    created_at: datetime
    received_at: datetime

"""Wire models of headless jobs, their results and drift sketches, shared by the agent and the control plane.

A job is desired state, like a model deployment: it travels inside the signed manifest
(:class:`jetfleet.manifest.ManifestPayload.jobs`). Results and sketches travel the other way on their own
endpoint, ``POST /api/v1/edge-devices/{id}/results`` (gzip-compressed JSON, bounded batches), never in
heartbeats. Every result and every sketch carries an idempotency ``key``: the control plane stores each key
once, so a batch delivered twice (agent killed between upload and acknowledgement) is not counted twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jetfleet.modelfiles.layout import NAME_PATTERN

JOB_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,200}$"
MAX_BATCH_ITEMS = 500
JobName = Annotated[str, Field(pattern=JOB_NAME_PATTERN)]
IdempotencyKey = Annotated[str, Field(pattern=IDEMPOTENCY_KEY_PATTERN)]
ScheduleKind = Literal["every", "cron", "on_demand"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DesiredJob(_Wire):
    """One job a device should run: which model (by tag, so it follows swaps), which inputs, when."""

    name: JobName
    model: Annotated[str, Field(pattern=NAME_PATTERN)]
    tag: str
    input_dir: Annotated[str, Field(min_length=1, max_length=4096, description="a folder on the device")]
    schedule: ScheduleKind
    every_seconds: Annotated[float, Field(gt=0, le=366 * 86400)] | None = None
    cron: Annotated[str, Field(max_length=200)] | None = None
    run_generation: Annotated[int, Field(ge=0, description="bumped by `jobs run`: run once more when it grows")] = 0


class JobResult(_Wire):
    """The outcome of one input file in one run: the model's outputs, or an error naming the file and reason."""

    key: IdempotencyKey
    job: JobName
    run_id: Annotated[str, Field(min_length=1, max_length=64)]
    input: Annotated[str, Field(min_length=1, max_length=1024, description="the input file's name")]
    input_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    model: str
    version: Annotated[int, Field(ge=1)] | None = None
    outputs: dict[str, Any] | None = Field(default=None, description="tensor name -> nested list")
    error: Annotated[str, Field(max_length=2000)] | None = None
    created_at: datetime


class SketchWindow(_Wire):
    """One feature's values over one window, as a serialized mergeable KLL sketch (Apache DataSketches)."""

    key: IdempotencyKey
    model: str
    version: Annotated[int, Field(ge=1)]
    kind: Literal["input", "output"]
    tensor: Annotated[str, Field(min_length=1, max_length=256)]
    index: Annotated[int, Field(ge=0, description="feature index within the tensor's last dimension")]
    count: Annotated[int, Field(ge=1)]
    kll_b64: Annotated[str, Field(min_length=1, max_length=1_000_000)]
    window_start: datetime
    window_end: datetime


class ResultsBatch(_Wire):
    results: Annotated[list[JobResult], Field(max_length=MAX_BATCH_ITEMS)] = Field(default_factory=list)
    sketches: Annotated[list[SketchWindow], Field(max_length=MAX_BATCH_ITEMS)] = Field(default_factory=list)


class ResultsAck(_Wire):
    """What the control plane kept: new items, and items it already had (a redelivery), by kind."""

    results_accepted: int
    results_duplicate: int
    sketches_accepted: int
    sketches_duplicate: int


class OutboxStatus(_Wire):
    """The on-device results outbox, reported in each heartbeat so `fleet status` shows a growing backlog."""

    pending: Annotated[int, Field(ge=0)] = 0
    oldest_age_seconds: Annotated[float, Field(ge=0)] | None = None
    dropped_total: Annotated[int, Field(ge=0)] = 0
    upload_failures_total: Annotated[int, Field(ge=0)] = 0

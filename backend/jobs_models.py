"""ORM models of headless jobs, their results and drift state (issue 11), next to jetfleet.backend.models.

A job is desired state (``jobs`` + ``job_targets``); results and sketches are what devices report, each
stored once per idempotency ``key``; the drift tables hold reference sketches, each model version's
drift state and the webhook outbox (deliveries survive a restart).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jetfleet.backend.models import Base


class Job(Base):
    """One job: which model (by tag), which input folder on the device, when; and which devices."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    tag: Mapped[str] = mapped_column(String(64))
    input_dir: Mapped[str] = mapped_column(String(4096))
    schedule: Mapped[str] = mapped_column(String(16))  # every | cron | on_demand
    every_seconds: Mapped[float | None]
    cron: Mapped[str | None] = mapped_column(String(200))
    # Which devices: "devices" (the job_targets rows) or "all"; "selector" (labels, in ``selector``) plugs in here.
    target: Mapped[str] = mapped_column(String(16))
    selector: Mapped[dict[str, Any] | None]
    run_generation: Mapped[int] = mapped_column(Integer, default=0)  # `jobs run NAME` without --device
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JobTarget(Base):
    """An explicitly named device of a job (target "devices"); ``extra_runs`` counts `jobs run --device`."""

    __tablename__ = "job_targets"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.device_id", ondelete="CASCADE"),
                                           primary_key=True)
    explicit: Mapped[bool] = mapped_column(Boolean, default=True)  # False: a row only for extra_runs
    extra_runs: Mapped[int] = mapped_column(Integer, default=0)


class JobResultRow(Base):
    """One input file's outcome in one run, stored once per key."""

    __tablename__ = "job_results"
    __table_args__ = (Index("ix_job_results_job_device", "job", "device_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    device_id: Mapped[str] = mapped_column(String(64))
    job: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(64))
    input: Mapped[str] = mapped_column(String(1024))
    input_sha256: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)


class SketchRow(Base):
    """One feature's KLL sketch over one window of one device, stored once per key."""

    __tablename__ = "drift_sketches"
    __table_args__ = (Index("ix_drift_sketches_version", "model", "version", "kind", "tensor", "feature_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    tensor: Mapped[str] = mapped_column(String(256))
    feature_index: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)


class DriftReference(Base):
    """The reference sketch of one input feature of a model version (pushed, or the fleet's first N rows)."""

    __tablename__ = "drift_references"
    __table_args__ = (UniqueConstraint("model", "version", "tensor", "feature_index", name="uq_drift_references"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    tensor: Mapped[str] = mapped_column(String(256))
    feature_index: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    sketch: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(16))  # "pushed" | "first_rows"
    last_sketch_id: Mapped[int] = mapped_column(Integer, default=0)  # first_rows: sketches up to it made it
    created_at: Mapped[datetime]


class DriftState(Base):
    """Whether a model version drifts now, and its last evaluation's report (exported by every replica);
    a change queues a webhook delivery."""

    __tablename__ = "drift_states"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    drifting: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime]
    evaluated_at: Mapped[datetime]
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class WebhookDelivery(Base):
    """A drift report waiting to be (or already) delivered to the retrain webhook."""

    __tablename__ = "drift_webhook_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(16))  # "drift" | "recovered"
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(index=True)
    last_error: Mapped[str | None] = mapped_column(Text)

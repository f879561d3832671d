"""headless jobs, results, drift sketches, references, states and the webhook outbox (issue 11)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jetfleet.backend.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UTC = jetfleet.backend.models.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("outbox", sa.JSON(), nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("input_dir", sa.String(length=4096), nullable=False),
        sa.Column("schedule", sa.String(length=16), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=True),
        sa.Column("cron", sa.String(length=200), nullable=True),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("selector", sa.JSON(), nullable=True),
        sa.Column("run_generation", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_index("ix_jobs_model", "jobs", ["model"])
    op.create_table(
        "job_targets",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("explicit", sa.Boolean(), nullable=False),
        sa.Column("extra_runs", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "device_id"),
    )
    op.create_table(
        "job_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("input", sa.String(length=1024), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("received_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_job_results_job_device", "job_results", ["job", "device_id", "id"])
    op.create_index("ix_job_results_received_at", "job_results", ["received_at"])
    op.create_table(
        "drift_sketches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("tensor", sa.String(length=256), nullable=False),
        sa.Column("feature_index", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("window_start", UTC(), nullable=False),
        sa.Column("window_end", UTC(), nullable=False),
        sa.Column("received_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_drift_sketches_version", "drift_sketches",
                    ["model", "version", "kind", "tensor", "feature_index"])
    op.create_index("ix_drift_sketches_device_id", "drift_sketches", ["device_id"])
    op.create_index("ix_drift_sketches_received_at", "drift_sketches", ["received_at"])
    op.create_table(
        "drift_references",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tensor", sa.String(length=256), nullable=False),
        sa.Column("feature_index", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("last_sketch_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "version", "tensor", "feature_index", name="uq_drift_references"),
    )
    op.create_table(
        "drift_states",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("drifting", sa.Boolean(), nullable=False),
        sa.Column("changed_at", UTC(), nullable=False),
        sa.Column("evaluated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("model", "version"),
    )
    op.create_table(
        "drift_webhook_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", UTC(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_drift_webhook_outbox_delivered_at", "drift_webhook_outbox", ["delivered_at"])


def downgrade() -> None:
    op.drop_table("drift_webhook_outbox")
    op.drop_table("drift_states")
    op.drop_table("drift_references")
    op.drop_table("drift_sketches")
    op.drop_table("job_results")
    op.drop_table("job_targets")
    op.drop_table("jobs")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("outbox")

"""devices

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jetfleet.backend.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("device_name", sa.String(length=128), nullable=False),
        sa.Column("device_type", sa.String(length=64), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("heartbeat_interval", sa.Float(), nullable=False),
        sa.Column("registered_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat_at", jetfleet.backend.models.UTCDateTime(), nullable=True),
        sa.Column("offline_after", jetfleet.backend.models.UTCDateTime(), nullable=True),
        sa.Column("last_metrics", sa.JSON(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("heartbeats_received", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_index("ix_devices_offline_after", "devices", ["offline_after"])


def downgrade() -> None:
    op.drop_index("ix_devices_offline_after", table_name="devices")
    op.drop_table("devices")

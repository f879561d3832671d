"""staged rollouts, device labels, rollout pins on deployments

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jetfleet.backend.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("model_deployments") as batch:
        batch.add_column(sa.Column("pinned_version", sa.Integer(), nullable=True))
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("doc", sa.JSON(), nullable=False),
        sa.Column("created_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollouts_name", "rollouts", ["name"])
    op.create_index("ix_rollouts_state", "rollouts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_rollouts_state", table_name="rollouts")
    op.drop_index("ix_rollouts_name", table_name="rollouts")
    op.drop_table("rollouts")
    with op.batch_alter_table("model_deployments") as batch:
        batch.drop_column("pinned_version")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("labels")

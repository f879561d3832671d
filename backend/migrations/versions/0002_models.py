"""model registry, tags, deployments, manifest serials

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jetfleet.backend.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("manifest_keys", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("framework", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=128), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=True),
        sa.Column("golden", sa.JSON(), nullable=True),
        sa.Column("created_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    )
    op.create_index("ix_model_versions_name", "model_versions", ["name"])
    op.create_index("ix_model_versions_sha256", "model_versions", ["sha256"])
    op.create_table(
        "model_tags",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "tag"),
    )
    op.create_table(
        "model_deployments",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", jetfleet.backend.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.device_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("device_id", "name"),
    )
    op.create_table(
        "manifest_serials",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )


def downgrade() -> None:
    op.drop_table("manifest_serials")
    op.drop_table("model_deployments")
    op.drop_table("model_tags")
    op.drop_index("ix_model_versions_sha256", table_name="model_versions")
    op.drop_index("ix_model_versions_name", table_name="model_versions")
    op.drop_table("model_versions")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("manifest_keys")

"""Alembic environment: runs on the connection handed over by jetfleet.backend.db.migrate()."""

from __future__ import annotations

from alembic import context

import jetfleet.backend.jobs_models  # noqa: F401  (its tables join Base.metadata)
from jetfleet.backend.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through jetfleet.backend.db.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTERs
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

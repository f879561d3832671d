"""ORM models of the control plane's database."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, TypeDecorator, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Device(Base):
    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_name: Mapped[str] = mapped_column(String(128))
    device_type: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(128))
    hardware: Mapped[dict[str, Any]]
    agent_version: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str | None] = mapped_column(String(64))
    heartbeat_interval: Mapped[float] = mapped_column(Float)
    registered_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime | None]
    # last_heartbeat_at + missed-intervals x interval: "online" is one indexed comparison.
    offline_after: Mapped[datetime | None] = mapped_column(index=True)
    last_metrics: Mapped[dict[str, Any] | None]
    models: Mapped[list[Any]] = mapped_column(default=list)
    services: Mapped[list[Any]] = mapped_column(default=list)
    heartbeats_received: Mapped[int] = mapped_column(Integer, default=0)
    manifest_keys: Mapped[list[Any]] = mapped_column(default=list)  # key ids the device reports trusting
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)  # from the agent config and `fleet label`
    outbox: Mapped[dict[str, Any] | None]  # the results outbox, as of the last heartbeat (jetfleet.jobs)


class ModelVersion(Base):
    """One pushed artifact: immutable once created."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    framework: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(128))
    signature: Mapped[dict[str, Any] | None]
    golden: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class ModelTag(Base):
    """A movable pointer NAME:TAG -> version."""

    __tablename__ = "model_tags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class Deployment(Base):
    """Device DEVICE follows NAME:TAG; ``generation`` counts explicit (re)deploys."""

    __tablename__ = "model_deployments"

    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.device_id", ondelete="CASCADE"),
                                           primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime]
    # A running rollout pins the devices of its started waves to its new version (the tag stays at the old one).
    pinned_version: Mapped[int | None] = mapped_column(Integer, default=None)


class ManifestSerial(Base):
    """The last manifest serial issued per device id (kept when a device is removed, so serials never go back)."""

    __tablename__ = "manifest_serials"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger)


class RolloutRow(Base):
    """A staged rollout of NAME:TAG; ``doc`` is the whole state (jetfleet.backend.rollout_machine.Rollout)."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    tag: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    doc: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ControlPlaneValue(Base):
    """Facts every control-plane replica of the database must agree on (e.g. the manifest signing key id)."""

    __tablename__ = "control_plane"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime]


class ReplicaRecord(Base):
    """What a control-plane replica was started with (secrets as keyed digests), to find replicas that differ."""

    __tablename__ = "control_plane_replicas"

    replica: Mapped[str] = mapped_column(String(255), primary_key=True)
    settings: Mapped[dict[str, Any]]
    started_at: Mapped[datetime]

"""The model registry's database side: versions, movable tags, deployments and manifest serials.

Every function takes an open session; the API module owns the transactions. Functions that change
what devices should run return the affected device ids: the caller bumps their manifest serials in
the same transaction (:func:`bump_serials`) and then drops their cached manifests.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jetfleet.backend import invalidation
from jetfleet.backend.artifacts import InvalidField
from jetfleet.backend.model_schemas import DeploymentRecord, ModelDetail, ModelSummary, VersionRecord
from jetfleet.backend.models import Deployment, Device, ManifestSerial, ModelTag, ModelVersion
from jetfleet.errors import NotFoundError
from jetfleet.manifest import DesiredModel, GoldenCheck, TensorSpecEntry


def latest_version(session: Session, name: str) -> int:
    return session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name)) or 0


def get_version(session: Session, name: str, version: int, *, field: str = "version") -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
    if row is None:
        latest = latest_version(session, name)
        known = f"latest is {latest}" if latest else "it has no versions; push one first"
        raise NotFoundError(f"{field}: model '{name}' has no version {version} ({known})")
    return row


def add_version(session: Session, *, name: str, sha256: str, size_bytes: int, framework: str, filename: str,
                signature: dict[str, Any] | None, golden: GoldenCheck | None, now: datetime) -> ModelVersion:
    row = ModelVersion(name=name, version=latest_version(session, name) + 1, sha256=sha256, size_bytes=size_bytes,
                       framework=framework, filename=filename, signature=signature,
                       golden=golden.model_dump(mode="json") if golden else None, created_at=now)
    session.add(row)
    session.flush()
    return row


def set_tag(session: Session, name: str, tag: str, version: int, now: datetime) -> tuple[int | None, list[str]]:
    """Point NAME:TAG at ``version``; returns the previous version and the devices following the tag.

    Every follower runs it from now on: pins left by a rollout limited by a selector go.
    """
    get_version(session, name, version)
    row = session.get(ModelTag, (name, tag))
    previous = row.version if row else None
    if row is None:
        session.add(ModelTag(name=name, tag=tag, version=version, updated_at=now))
    else:
        row.version, row.updated_at = version, now
    clear_pins(session, name, tag)
    return previous, followers(session, name, tag)


def deploy(session: Session, name: str, tag: str, device_ids: list[str] | None, now: datetime) -> tuple[int, list[str]]:
    """Make devices (None: every registered device) follow NAME:TAG; returns the tag's version and the devices."""
    row = session.get(ModelTag, (name, tag))
    if row is None:
        tags = ", ".join(sorted(session.scalars(select(ModelTag.tag).where(ModelTag.name == name)))) or "none"
        raise NotFoundError(f"tag: model '{name}' has no tag '{tag}' (tags: {tags})")
    targets = list(session.scalars(select(Device.device_id))) if device_ids is None else _known_devices(
        session, device_ids)
    for device_id in targets:
        current = session.get(Deployment, (device_id, name))
        if current is None:
            session.add(Deployment(device_id=device_id, name=name, tag=tag, generation=1, updated_at=now))
        else:
            current.tag, current.generation, current.updated_at = tag, current.generation + 1, now
            current.pinned_version = None
    return row.version, targets


def set_pins(session: Session, name: str, tag: str, pins: dict[str, int | None]) -> list[str]:
    """Pin (or unpin, None) devices following NAME:TAG to a version; returns the devices whose pin changed."""
    if not pins:
        return []
    changed = []
    rows = session.scalars(select(Deployment).where(Deployment.name == name, Deployment.tag == tag,
                                                    Deployment.device_id.in_(list(pins))))
    for row in rows:
        if row.pinned_version != pins[row.device_id]:
            row.pinned_version = pins[row.device_id]
            changed.append(row.device_id)
    return changed


def pins(session: Session, name: str, tag: str, device_ids: list[str]) -> dict[str, int]:
    """The pins those devices following NAME:TAG have now."""
    rows = session.execute(select(Deployment.device_id, Deployment.pinned_version).where(
        Deployment.name == name, Deployment.tag == tag, Deployment.device_id.in_(device_ids),
        Deployment.pinned_version.is_not(None)))
    return {device_id: version for device_id, version in rows if version is not None}


def clear_pins(session: Session, name: str, tag: str) -> list[str]:
    rows = session.scalars(select(Deployment).where(Deployment.name == name, Deployment.tag == tag,
                                                    Deployment.pinned_version.is_not(None)))
    changed = []
    for row in rows:
        row.pinned_version = None
        changed.append(row.device_id)
    return changed


def followers(session: Session, name: str, tag: str) -> list[str]:
    return list(session.scalars(select(Deployment.device_id).where(Deployment.name == name, Deployment.tag == tag)
                                .order_by(Deployment.device_id)))


def undeploy(session: Session, name: str, device_ids: list[str] | None) -> list[str]:
    query = select(Deployment).where(Deployment.name == name)
    if device_ids is not None:
        query = query.where(Deployment.device_id.in_(device_ids))
    rows = list(session.scalars(query))
    for row in rows:
        session.delete(row)
    return [row.device_id for row in rows]


def _known_devices(session: Session, device_ids: list[str]) -> list[str]:
    if not device_ids:
        raise InvalidField("devices", "name at least one device (--device ID) or use --all")
    known = set(session.scalars(select(Device.device_id).where(Device.device_id.in_(device_ids))))
    missing = [d for d in device_ids if d not in known]
    if missing:
        raise NotFoundError(f"devices: unknown device(s) {', '.join(missing)}")
    return list(dict.fromkeys(device_ids))


# A heartbeat that read the database just before a change committed may have answered a device without a
# serial row with the time of its read; the change's serial must stay above that, however long the change's
# transaction waited (SQLite's writer lock, a busy host). Serials only need to grow, so the margin is generous.
SERIAL_MARGIN_MS = 10 * 60 * 1000


def bump_serials(session: Session, device_ids: Iterable[str]) -> None:
    """Give each device a new, higher manifest serial (atomic per row, above any time serial issued so far)."""
    ids = sorted(set(device_ids))
    if not ids:
        return
    invalidation.mark(session, desired=ids)  # the other replicas drop their cached desired state at commit
    floor = _time_serial(datetime.now(timezone.utc)) + SERIAL_MARGIN_MS
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(ManifestSerial).on_conflict_do_nothing(index_elements=["device_id"]),
                    [{"device_id": d, "serial": 0} for d in ids])
    bumped = func.max(ManifestSerial.serial + 1, floor) if session.get_bind().dialect.name == "sqlite" \
        else func.greatest(ManifestSerial.serial + 1, floor)
    session.execute(update(ManifestSerial).where(ManifestSerial.device_id.in_(ids)).values(serial=bumped))


def serial_of(session: Session, device_id: str, now: datetime) -> int:
    """The device's manifest serial. A device whose desired state never changed has no row; it gets the
    current time in ms, which is above anything issued to it before (and :func:`bump_serials` stays above)."""
    serial = session.scalar(select(ManifestSerial.serial).where(ManifestSerial.device_id == device_id))
    return int(serial) if serial is not None else _time_serial(now)


def _time_serial(now: datetime) -> int:
    """The current time in ms: serials are never below it, so a restart can not reissue an older one."""
    return int(now.timestamp() * 1000)


# A device wants its rollout pin if it has one, else the version its tag points at.
_WANTED_VERSION = func.coalesce(Deployment.pinned_version, ModelTag.version)
_DESIRED = (select(Deployment, ModelVersion)
            .join(ModelTag, (ModelTag.name == Deployment.name) & (ModelTag.tag == Deployment.tag))
            .join(ModelVersion, (ModelVersion.name == ModelTag.name) & (ModelVersion.version == _WANTED_VERSION)))


def desired_models(session: Session, device_id: str) -> list[DesiredModel]:
    rows = session.execute(_DESIRED.where(Deployment.device_id == device_id).order_by(Deployment.name))
    return [desired_model(version, deployment.tag, deployment.generation) for deployment, version in rows]


def all_desired(session: Session, now: datetime,
                device_ids: list[str] | None = None) -> dict[str, tuple[int, list[DesiredModel]]]:
    """Every device's (serial, desired models) in three queries: the bulk form of :func:`serial_of` and
    :func:`desired_models` (only ``device_ids`` when given)."""
    default_serial = _time_serial(now)
    devices, serials, desired = select(Device.device_id), select(ManifestSerial.device_id, ManifestSerial.serial), \
        _DESIRED
    if device_ids is not None:
        devices = devices.where(Device.device_id.in_(device_ids))
        serials = serials.where(ManifestSerial.device_id.in_(device_ids))
        desired = desired.where(Deployment.device_id.in_(device_ids))
    result: dict[str, tuple[int, list[DesiredModel]]] = {
        device_id: (default_serial, []) for device_id in session.scalars(devices)}
    for device_id, serial in session.execute(serials):
        if device_id in result:
            result[device_id] = (int(serial), [])
    for deployment, version in session.execute(desired.order_by(Deployment.device_id, Deployment.name)):
        if deployment.device_id in result:
            result[deployment.device_id][1].append(desired_model(version, deployment.tag, deployment.generation))
    return result


def desired_model(row: ModelVersion, tag: str, generation: int) -> DesiredModel:
    signature = row.signature or {}
    return DesiredModel(name=row.name, version=row.version, tag=tag, sha256=row.sha256, size_bytes=row.size_bytes,
                        framework=row.framework, filename=row.filename,  # type: ignore[arg-type]
                        inputs=_specs(signature.get("inputs")), outputs=_specs(signature.get("outputs")),
                        golden=GoldenCheck.model_validate(row.golden) if row.golden else None,
                        generation=generation)


def _specs(value: Any) -> tuple[TensorSpecEntry, ...] | None:
    return None if value is None else tuple(TensorSpecEntry.model_validate(v) for v in value)


def device_may_fetch(session: Session, device_id: str, sha256: str) -> bool:
    """Devices fetch artifacts (and golden files) of the models deployed to them."""
    names = select(Deployment.name).where(Deployment.device_id == device_id)
    rows = session.scalars(select(ModelVersion).where(ModelVersion.name.in_(names)))
    for row in rows:
        golden = row.golden or {}
        blobs = {row.sha256, golden.get("input", {}).get("sha256"), golden.get("output", {}).get("sha256")}
        if sha256 in blobs:
            return True
    return False


def version_record(row: ModelVersion, tags: list[str]) -> VersionRecord:
    model = desired_model(row, "", 0)
    return VersionRecord(name=row.name, version=row.version, sha256=row.sha256, size_bytes=row.size_bytes,
                         framework=model.framework, filename=row.filename, inputs=model.inputs,
                         outputs=model.outputs, golden=model.golden, created_at=row.created_at, tags=tags)


def list_models(session: Session) -> list[ModelSummary]:
    stats = session.execute(select(ModelVersion.name, func.count(), func.max(ModelVersion.version),
                                   func.max(ModelVersion.created_at)).group_by(ModelVersion.name)
                            .order_by(ModelVersion.name))
    tags = _tags_by_model(session)
    devices = {name: count for name, count in
               session.execute(select(Deployment.name, func.count()).group_by(Deployment.name))}
    return [ModelSummary(name=name, versions=count, latest=latest, tags=tags.get(name, {}),
                         devices=devices.get(name, 0), updated_at=updated)
            for name, count, latest, updated in stats]


def model_detail(session: Session, name: str) -> ModelDetail:
    rows = list(session.scalars(select(ModelVersion).where(ModelVersion.name == name)
                                .order_by(ModelVersion.version)))
    if not rows:
        raise NotFoundError(f"unknown model '{name}'")
    tags = _tags_by_model(session).get(name, {})
    by_version: dict[int, list[str]] = {}
    for tag, version in sorted(tags.items()):
        by_version.setdefault(version, []).append(tag)
    deployments = session.scalars(select(Deployment).where(Deployment.name == name).order_by(Deployment.device_id))
    return ModelDetail(name=name, versions=[version_record(r, by_version.get(r.version, [])) for r in rows],
                       tags=tags, deployments=[DeploymentRecord(device_id=d.device_id, tag=d.tag,
                                                                generation=d.generation) for d in deployments])


def deployments_of(session: Session, name: str) -> dict[str, tuple[str, int | None]]:
    """device id -> (tag, the tag's version) for every device following a tag of ``name``."""
    rows = session.execute(select(Deployment.device_id, Deployment.tag, _WANTED_VERSION)
                           .outerjoin(ModelTag, (ModelTag.name == Deployment.name) & (ModelTag.tag == Deployment.tag))
                           .where(Deployment.name == name))
    return {device_id: (tag, version) for device_id, tag, version in rows}


def _tags_by_model(session: Session) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for row in session.scalars(select(ModelTag)):
        result.setdefault(row.name, {})[row.tag] = row.version
    return result

"""Drift of a model version's inputs: references, windows of merged sketches, and the window rule.

- Reference: per input feature a KLL sketch, pushed with the version (``models push --reference REF.npz``)
  or, without one, merged from the first ``drift_reference_rows`` input rows the fleet reported for the
  version (those sketches are then not part of any current window).
- Windows: the devices' sketches are bucketed by their ``window_end`` into ``drift_window``-second windows
  (aligned to the epoch); the ``drift_windows`` windows ending with the newest one are looked at, each merged
  over the fleet (or over one device).
- Rule: in each window with at least ``drift_min_window_rows`` rows, a feature is flagged when its KS statistic
  is above the null critical value at ``drift_alpha / features`` (see jetfleet.backend.drift_stats); the
  feature drifts when flagged in at least ``drift_min_windows`` windows, the version when any feature drifts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from datasketches import kll_floats_sketch
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jetfleet.backend.drift_schemas import STATISTICS, DriftReport, FeatureDrift
from jetfleet.backend.drift_stats import compare, merged
from jetfleet.backend.jobs_models import DriftReference, SketchRow
from jetfleet.backend.settings import BackendSettings

KLL_K = 200
Feature = tuple[str, int]


def reference_sketches(arrays: dict[str, np.ndarray]) -> dict[Feature, kll_floats_sketch]:
    """Per (input name, feature index) a sketch of a reference array (rows = samples, last dim = features)."""
    result = {}
    for name, array in arrays.items():
        values = np.asarray(array, dtype=np.float32)
        table = values.reshape(-1, 1) if values.ndim <= 1 else values.reshape(-1, values.shape[-1])
        for index in range(table.shape[1]):
            sketch = kll_floats_sketch(KLL_K)
            sketch.update(np.ascontiguousarray(table[:, index]))
            result[(name, index)] = sketch
    return result


def store_reference(session: Session, model: str, version: int, sketches: dict[Feature, kll_floats_sketch], *,
                    source: str, now: datetime, last_sketch_id: int = 0) -> None:
    rows = [{"model": model, "version": version, "tensor": tensor, "feature_index": index, "count": int(s.n),
             "sketch": s.serialize(), "source": source, "created_at": now, "last_sketch_id": last_sketch_id}
            for (tensor, index), s in sorted(sketches.items())]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(DriftReference).on_conflict_do_nothing(), rows)


def load_reference(session: Session, model: str, version: int) -> tuple[str, dict[Feature, kll_floats_sketch], int]:
    """(source, sketches, last sketch id used) of the version's reference; source "collecting" when none yet."""
    rows = list(session.scalars(select(DriftReference).where(DriftReference.model == model,
                                                             DriftReference.version == version)))
    if not rows:
        return "collecting", {}, 0
    sketches = {(r.tensor, r.feature_index): kll_floats_sketch.deserialize(r.sketch) for r in rows}
    return rows[0].source, sketches, max(r.last_sketch_id for r in rows)


def ensure_reference(session: Session, model: str, version: int, rows_needed: int, now: datetime) -> int:
    """Make the first ``rows_needed`` reported input rows the reference when there is none; returns the rows
    collected so far (or in the reference)."""
    existing = session.scalar(select(func.max(DriftReference.count)).where(DriftReference.model == model,
                                                                           DriftReference.version == version))
    if existing is not None:
        return int(existing)
    query = (select(SketchRow.id, SketchRow.tensor, SketchRow.feature_index, SketchRow.count)
             .where(SketchRow.model == model, SketchRow.version == version, SketchRow.kind == "input")
             .order_by(SketchRow.id))
    seen: dict[Feature, int] = defaultdict(int)
    chosen: dict[Feature, list[int]] = defaultdict(list)
    for sketch_id, tensor, index, count in session.execute(query):
        feature = (tensor, index)
        if seen[feature] < rows_needed:
            seen[feature] += count
            chosen[feature].append(sketch_id)
    if not seen or min(seen.values()) < rows_needed:
        return min(seen.values(), default=0)
    ids = [i for ids in chosen.values() for i in ids]
    blobs = {i: blob for i, blob in session.execute(select(SketchRow.id, SketchRow.sketch)
                                                    .where(SketchRow.id.in_(ids)))}
    sketches = {f: merged([kll_floats_sketch.deserialize(blobs[i]) for i in ids], KLL_K) for f, ids in chosen.items()}
    store_reference(session, model, version, sketches, source="first_rows", now=now, last_sketch_id=max(ids))
    return min(seen.values())


def evaluate(session: Session, model: str, version: int, settings: BackendSettings,
             device_id: str | None = None) -> DriftReport:
    """The version's drift over its recent windows (fleet-wide, or one device's)."""
    source, reference, after_id = load_reference(session, model, version)
    base: dict[str, Any] = {"model": model, "version": version, "device_id": device_id,
                            "window_seconds": settings.drift_window, "min_windows": settings.drift_min_windows,
                            "alpha": settings.drift_alpha}
    if not reference:
        collected = ensure_reference(session, model, version, settings.drift_reference_rows, _now())
        source, reference, after_id = load_reference(session, model, version)
        if not reference:
            return DriftReport(**base, drift=False, reference="collecting", reference_rows=collected)
    windows, devices, span = _recent_windows(session, model, version, settings, device_id, after_id)
    alpha = settings.drift_alpha / len(reference)
    features = [_feature(tensor, index, sketch, windows.get((tensor, index), {}), alpha, settings)
                for (tensor, index), sketch in sorted(reference.items())]
    return DriftReport(**base, drift=any(f.drift for f in features), reference=source,  # type: ignore[arg-type]
                       reference_rows=min(int(s.n) for s in reference.values()), window_start=span[0],
                       window_end=span[1], devices=devices, features=features)


def _feature(tensor: str, index: int, reference: kll_floats_sketch, buckets: dict[int, kll_floats_sketch],
             alpha: float, settings: BackendSettings) -> FeatureDrift:
    tested = [compare(reference, s, alpha=alpha) for s in buckets.values() if s.n >= settings.drift_min_window_rows]
    flagged = sum(stats.drift for stats in tested)
    total = merged(list(buckets.values()), KLL_K)
    if total.n == 0:
        return FeatureDrift(input=tensor, index=index, drift=False, n_reference=int(reference.n), n_current=0,
                            windows=0, windows_drifting=0)
    stats = compare(reference, total, alpha=alpha)
    values = {name: _finite(getattr(stats, name)) for name in STATISTICS + tuple(f"{n}_threshold" for n in STATISTICS)}
    return FeatureDrift(input=tensor, index=index, drift=flagged >= settings.drift_min_windows, **values,
                        n_reference=stats.n_reference, n_current=stats.n_current, windows=len(tested),
                        windows_drifting=flagged)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _recent_windows(session: Session, model: str, version: int, settings: BackendSettings, device_id: str | None,
                    after_id: int) -> tuple[dict[Feature, dict[int, kll_floats_sketch]], list[str],
                                            tuple[datetime | None, datetime | None]]:
    scope = [SketchRow.model == model, SketchRow.version == version, SketchRow.kind == "input",
             SketchRow.id > after_id]
    if device_id is not None:
        scope.append(SketchRow.device_id == device_id)
    newest = session.scalar(select(func.max(SketchRow.window_end)).where(*scope))
    if newest is None:
        return {}, [], (None, None)
    width = settings.drift_window
    last_bucket = _bucket(newest, width)
    start = datetime.fromtimestamp((last_bucket - settings.drift_windows + 1) * width, timezone.utc)
    rows = session.execute(select(SketchRow.tensor, SketchRow.feature_index, SketchRow.device_id,
                                  SketchRow.window_end, SketchRow.sketch)
                           .where(*scope, SketchRow.window_end > start))
    windows: dict[Feature, dict[int, kll_floats_sketch]] = defaultdict(dict)
    devices: set[str] = set()
    for tensor, index, device, end, blob in rows:
        bucket = windows[(tensor, index)].setdefault(_bucket(end, width), kll_floats_sketch(KLL_K))
        bucket.merge(kll_floats_sketch.deserialize(blob))
        devices.add(device)
    return windows, sorted(devices), (start, start + timedelta(seconds=width * settings.drift_windows))


def _bucket(moment: datetime, width: float) -> int:
    return math.floor(moment.timestamp() / width - 1e-9)  # a window ending on a boundary belongs to the one before


def versions_with_sketches(session: Session) -> Iterable[tuple[str, int]]:
    query = select(SketchRow.model, SketchRow.version).where(SketchRow.kind == "input").distinct()
    return [(model, int(version)) for model, version in session.execute(query)]


def _now() -> datetime:
    return datetime.now(timezone.utc)

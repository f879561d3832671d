"""HTTP endpoint of drift detection (/api/v1/drift, scope read): a model version's drift, evaluated on request."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jetfleet.backend import appstate, drift, model_registry
from jetfleet.backend.auth import require_read
from jetfleet.backend.drift_schemas import DriftReport
from jetfleet.backend.jobs_models import DriftReference, SketchRow

router = APIRouter(prefix="/api/v1/drift", tags=["drift"])


@router.get("/{model}", response_model=DriftReport, dependencies=[Depends(require_read)])
def drift_status(model: str, request: Request, version: int | None = Query(None, ge=1, le=2**31 - 1),
                 device_id: str | None = None) -> DriftReport:
    """Per input feature: PSI, JS, KS, Wasserstein against the reference, their thresholds and the drift verdict
    (default version: the newest one that devices reported inputs for, or that has a reference)."""
    with appstate.sessions(request).begin() as session:
        if version is None:
            version = _default_version(session, model)
        model_registry.get_version(session, model, version)
        return drift.evaluate(session, model, version, appstate.settings(request), device_id)


def _default_version(session: Session, model: str) -> int:
    candidates = [session.scalar(select(func.max(SketchRow.version)).where(SketchRow.model == model)),
                  session.scalar(select(func.max(DriftReference.version)).where(DriftReference.model == model))]
    found = max((v for v in candidates if v is not None), default=None)
    return int(found) if found is not None else max(model_registry.latest_version(session, model), 1)

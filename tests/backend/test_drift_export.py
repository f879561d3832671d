"""Which stored drift reports /metrics exports: those of versions evaluated lately, whoever led then; rows
from before the report was stored (an upgraded database) export nothing until their next evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from jetfleet.backend.db import create_db_engine, migrate
from jetfleet.backend.drift_monitor import EXPORTED_MIN_S, DriftMonitor
from jetfleet.backend.drift_schemas import DriftReport, FeatureDrift
from jetfleet.backend.jobs_models import DriftState
from jetfleet.backend.settings import BackendSettings


def report(model: str) -> DriftReport:
    feature = FeatureDrift(input="input", index=0, drift=True, ks=0.4, ks_threshold=0.1, n_reference=5000,
                           n_current=400, windows=3, windows_drifting=3)
    return DriftReport(model=model, version=1, drift=True, reference="pushed", reference_rows=5000,
                       window_seconds=3600, min_windows=2, alpha=0.01, devices=["dev-a"], features=[feature])


def test_stored_reports_are_exported_while_recent_and_old_rows_without_one_are_skipped(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'drift.db'}"
    engine = create_db_engine(database)
    migrate(engine, "0007")  # a database from before the reports were stored
    evaluated = datetime.now(timezone.utc)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO drift_states (model, version, drifting, changed_at, evaluated_at) "
                                "VALUES ('old', 1, 1, :at, :at)"), {"at": evaluated.isoformat()})
    migrate(engine)
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        session.add(DriftState(model="new", version=1, drifting=True, changed_at=evaluated, evaluated_at=evaluated,
                               report=report("new").model_dump(mode="json")))
    monitor = DriftMonitor(sessions, BackendSettings(database_url=database, admin_token="t" * 8,
                                                     drift_interval=200.0))

    assert monitor.reports() == [report("new")]  # the old row has no report yet
    lately = evaluated + timedelta(seconds=3 * 200.0 - 1)  # three rounds of 200 s (more than EXPORTED_MIN_S)
    assert monitor.reports(now=lately) == [report("new")]
    assert monitor.reports(now=lately + timedelta(seconds=2)) == []  # no longer evaluated: its data aged out
    short = DriftMonitor(sessions, BackendSettings(database_url=database, admin_token="t" * 8, drift_interval=1.0))
    assert short.reports(now=evaluated + timedelta(seconds=EXPORTED_MIN_S - 1)) == [report("new")]
    engine.dispose()

"""Manifest serials only grow, even when a heartbeat's read races an admin change (the device then refuses
an older serial as a rollback)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy.orm import sessionmaker

from jetfleet.backend import model_registry
from jetfleet.backend.db import create_db_engine, migrate
from jetfleet.backend.models import Device


def test_a_change_stays_above_the_time_serial_of_a_read_that_raced_it(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'serials.db'}")
    migrate(engine)
    sessions = sessionmaker(engine)
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        session.add(Device(device_id="jetson-a", device_name="a", device_type="jetson", location="lab", hardware={},
                           heartbeat_interval=5.0, registered_at=now))
    # A heartbeat read before the change committed, on a clock a few seconds ahead of the change's start.
    with sessions.begin() as session:
        raced = model_registry.serial_of(session, "jetson-a", now + timedelta(seconds=5))
    with sessions.begin() as session:
        model_registry.bump_serials(session, ["jetson-a"])
    with sessions.begin() as session:
        first = model_registry.serial_of(session, "jetson-a", now)
    with sessions.begin() as session:
        model_registry.bump_serials(session, ["jetson-a"])
    with sessions.begin() as session:
        second = model_registry.serial_of(session, "jetson-a", now)
    assert raced < first < second
    engine.dispose()

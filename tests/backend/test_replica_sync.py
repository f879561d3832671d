"""The parts that let control-plane replicas share one PostgreSQL database, each against the real server:
the invalidation payloads, NOTIFY at commit and the listener, the leader lease and its fencing, heartbeat
batches of two
writers on one device, and the start-up checks of the shared signing key and data dir."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jetfleet.backend import invalidation, model_registry, pgconn
from jetfleet.backend.cache_listener import CacheListener
from jetfleet.backend.db import create_db_engine, migrate
from jetfleet.backend.desired_state import DesiredState
from jetfleet.backend.ingest import DeviceAuth, HeartbeatIngest
from jetfleet.backend.invalidation import ALL, MAX_PAYLOAD_BYTES, Invalidation, decode, encode
from jetfleet.backend.leadership import LeaderLease, NotLeader
from jetfleet.backend.models import Device
from jetfleet.backend.replica_checks import DATA_ID_FILE, claim_data_dir, claim_signing_key, refuse_missing_key
from jetfleet.backend.replicas import BULK_RELOAD_MIN, apply
from jetfleet.backend.rollouts import RolloutEngine
from jetfleet.backend.settings import BackendSettings
from jetfleet.backend.signing import Signer, create_key
from jetfleet.errors import ConfigError
from jetfleet.protocol import Heartbeat
from tests.support.postgres import PostgresServer, create_database
from tests.support.processes import wait_until

pytestmark = pytest.mark.postgres


# -- payloads (pure) ------------------------------------------------------------------------------------
def test_payload_round_trip_and_merge() -> None:
    change = Invalidation("replica-a", frozenset({"b", "a"}), frozenset())
    text = encode(change)
    assert json.loads(text) == {"r": "replica-a", "d": ["a", "b"]}
    assert decode(text) == change
    merged = change.merge(Invalidation(auth=frozenset({"c"}))).merge(Invalidation(desired=ALL))
    assert decode(encode(merged)) == Invalidation("replica-a", ALL, frozenset({"c"}))


def test_a_payload_over_the_postgres_limit_falls_back_to_all() -> None:
    ids = frozenset(f"device-{i:05d}-{'x' * 40}" for i in range(400))
    text = encode(Invalidation("r", ids, frozenset({"one"})))
    assert len(text.encode()) <= MAX_PAYLOAD_BYTES
    assert decode(text) == Invalidation("r", ALL, ALL)


@pytest.mark.parametrize("payload", ["", "not json", "[1, 2]", '{"d": [1]}', '{"a": "some"}', '{"d": {"x": 1}}'])
def test_an_unreadable_payload_invalidates_everything(payload: str) -> None:
    assert decode(payload) == Invalidation("", ALL, ALL)


def test_absent_keys_invalidate_nothing() -> None:
    assert decode('{"r": "x"}').empty


# -- real PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[str]:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    engine = create_db_engine(database)
    yield engine
    engine.dispose()


class Received:
    def __init__(self) -> None:
        self.changes: list[Invalidation] = []
        self.resyncs = 0
        self.event = threading.Event()

    def apply(self, change: Invalidation) -> None:
        self.changes.append(change)
        self.event.set()

    def resync(self) -> None:
        self.resyncs += 1


@pytest.fixture
def listener(database: str) -> Iterator[tuple[CacheListener, Received]]:
    received = Received()
    listener = CacheListener(database, "replica-b", apply=received.apply, resync=received.resync)
    assert listener.start(wait=10)
    yield listener, received
    listener.stop()


def _sessions(engine: Engine, origin: str) -> sessionmaker[Session]:
    sessions = sessionmaker(engine)
    invalidation.install(sessions, origin)
    return sessions


def _add_device(sessions: sessionmaker[Session], device_id: str) -> None:
    with sessions.begin() as session:
        session.add(Device(device_id=device_id, device_name=device_id, device_type="jetson", location="lab",
                           hardware={}, heartbeat_interval=5.0, registered_at=datetime.now(timezone.utc)))


def test_a_committed_change_reaches_the_other_replica_and_a_rollback_sends_nothing(
        engine: Engine, listener: tuple[CacheListener, Received]) -> None:
    sessions = _sessions(engine, "replica-a")
    _add_device(sessions, "jetson-1")
    _add_device(sessions, "jetson-2")
    with pytest.raises(RuntimeError), sessions.begin() as session:
        model_registry.bump_serials(session, ["jetson-1"])
        raise RuntimeError("rolled back")
    with sessions.begin() as session:  # two marks in one transaction: one notification
        model_registry.bump_serials(session, ["jetson-1"])
        invalidation.mark(session, desired=["jetson-2"], auth=["jetson-2"])
    _, received = listener
    assert received.event.wait(5)
    assert received.changes == [Invalidation("replica-a", frozenset({"jetson-1", "jetson-2"}), frozenset({"jetson-2"}))]


def test_a_replica_ignores_its_own_notifications(engine: Engine, listener: tuple[CacheListener, Received]) -> None:
    _add_device(_sessions(engine, "x"), "jetson-1")
    with _sessions(engine, "replica-b").begin() as session:  # the listener's own name
        model_registry.bump_serials(session, ["jetson-1"])
    with _sessions(engine, "replica-c").begin() as session:
        model_registry.bump_serials(session, ["jetson-1"])
    _, received = listener
    assert received.event.wait(5)
    assert [c.origin for c in received.changes] == ["replica-c"]


def test_the_listener_reconnects_and_resyncs_after_losing_its_session(
        database: str, engine: Engine, listener: tuple[CacheListener, Received]) -> None:
    listen, received = listener
    assert received.resyncs == 0  # the first session comes before the caches load
    _terminate(database, "jetfleet-listen%")
    wait_until(lambda: listen.connections == 2 and listen.connected.is_set(), 15, what="listener reconnected")
    assert received.resyncs == 1
    _add_device(_sessions(engine, "x"), "jetson-1")
    with _sessions(engine, "replica-a").begin() as session:
        model_registry.bump_serials(session, ["jetson-1"])
    assert received.event.wait(5)


def _terminate(database: str, application_name: str) -> int:
    with psycopg.connect(pgconn.libpq_url(database), autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
                            (application_name,)).fetchall()
    return len(rows)


def test_one_lease_holder_and_takeover_when_it_stops_or_loses_its_session(database: str) -> None:
    leases = [LeaderLease(database, f"replica-{i}", interval=0.2) for i in range(3)]
    try:
        for lease in leases:
            lease.start()
        assert [lease.is_leader() for lease in leases] == [True, False, False]
        leases[0].stop()  # a clean stop releases at once
        wait_until(lambda: sum(lease.is_leader() for lease in leases[1:]) == 1, 5, what="a standby took over")
        holder = next(lease for lease in leases if lease.is_leader())
        assert _terminate(database, f"jetfleet-lease {holder.replica}") == 1  # the holder's session dies
        wait_until(lambda: not holder.is_leader(), 5, what="the old holder stepped down")
        wait_until(lambda: sum(lease.is_leader() for lease in leases[1:]) == 1, 5, what="one leader again")
    finally:
        for lease in leases:
            lease.stop()


def _waiting_on_a_lock(database: str, application_name: str) -> bool:
    with psycopg.connect(pgconn.libpq_url(database), autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE application_name = %s",
                           (application_name,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_a_leader_cut_off_from_the_database_writes_nothing_once_another_leads(database: str, engine: Engine) -> None:
    sessions = sessionmaker(engine)
    first = LeaderLease(database, "replica-a", interval=60)  # it would notice the loss of its session in a minute
    second = LeaderLease(database, "replica-b", interval=0.1)
    desired = DesiredState(BackendSettings(database, "t" * 8), sessions, None)
    rollouts = RolloutEngine(sessions, desired, leadership=first)
    try:
        first.start()
        second.start()
        assert first.is_leader() and not second.is_leader()
        assert rollouts.tick() == 0  # fenced by the current epoch: it may write
        with sessions.begin() as round_in_progress:
            first.fence(round_in_progress)
            # a partition: the server ends the old leader's lease session, the old leader has not noticed
            assert _terminate(database, "jetfleet-lease replica-a") == 1
            # the standby gets the lock, and its epoch waits for the old leader's round to end
            wait_until(lambda: _waiting_on_a_lock(database, "jetfleet-lease replica-b"), 10,
                       what="the new leader's epoch waiting for the round in progress")
            assert not second.is_leader()
        wait_until(second.is_leader, 10, what="the standby leads")
        assert first.is_leader()  # still believes it does
        with pytest.raises(NotLeader, match="replica-a no longer leads"):
            rollouts.tick()
        with sessions.begin() as session:
            second.fence(session)
    finally:
        first.stop()
        second.stop()


def test_two_writers_of_one_device_never_move_its_heartbeat_backwards(engine: Engine) -> None:
    sessions = sessionmaker(engine, expire_on_commit=False)
    settings = BackendSettings(database_url="postgresql+psycopg://x@127.0.0.1/x", admin_token="t" * 8)
    a, b = HeartbeatIngest(sessions, settings), HeartbeatIngest(sessions, settings)
    _add_device(sessions, "jetson-1")
    auth = DeviceAuth("hash", 5.0)
    now = datetime.now(timezone.utc)
    newer = Heartbeat.model_validate({"agent_version": "2.0", "models": [{"name": "m", "serving_version": 2}]})
    older = Heartbeat.model_validate({"agent_version": "1.0", "models": [{"name": "m", "serving_version": 1}]})
    a.record("jetson-1", newer, auth, now)
    b.record("jetson-1", older, auth, now - timedelta(seconds=1))  # received earlier, flushed later
    assert a.flush() == 1 and b.flush() == 1
    with sessions() as session:
        device = session.get(Device, "jetson-1")
        assert device is not None
        assert device.last_heartbeat_at == now
        assert device.agent_version == "2.0" and device.models[0]["serving_version"] == 2
        assert device.heartbeats_received == 2
    b.record("jetson-1", older, auth, now + timedelta(seconds=1))  # newer again: it wins
    b.flush()
    with sessions() as session:
        device = session.get(Device, "jetson-1")
        assert device is not None and device.last_heartbeat_at == now + timedelta(seconds=1)
        assert device.models[0]["serving_version"] == 1 and device.heartbeats_received == 3


def test_replicas_must_share_the_signing_key_and_the_data_dir(engine: Engine, tmp_path: Path) -> None:
    old, new = create_key(tmp_path / "old.key"), create_key(tmp_path / "new.key")
    claim_signing_key(engine, Signer(old))
    claim_signing_key(engine, Signer(old))  # the same key: fine
    with pytest.raises(ConfigError, match=f"signs manifests with key {new.key_id}.*sign with key {old.key_id}"):
        claim_signing_key(engine, Signer(new))
    with pytest.raises(ConfigError, match="copy that key file here"):
        refuse_missing_key(engine, tmp_path / "absent.key")
    claim_signing_key(engine, Signer(new, previous=old))  # a rotation: the new key is recorded
    with pytest.raises(ConfigError, match=f"sign with key {new.key_id}"):
        claim_signing_key(engine, Signer(old))

    shared, local = tmp_path / "shared", tmp_path / "local"
    claim_data_dir(engine, shared)  # the first replica marks it
    claim_data_dir(engine, shared)
    with pytest.raises(ConfigError, match="is missing"):
        claim_data_dir(engine, local)
    local.mkdir()
    (local / DATA_ID_FILE).write_text("another\n")
    with pytest.raises(ConfigError, match="holds another id"):
        claim_data_dir(engine, local)


def test_another_replicas_change_drops_the_entries_and_reloads_a_large_one_in_bulk(engine: Engine) -> None:
    sessions = sessionmaker(engine, expire_on_commit=False)
    settings = BackendSettings(database_url="postgresql+psycopg://x@127.0.0.1/x", admin_token="t" * 8)
    desired, ingest = DesiredState(settings, sessions, None), HeartbeatIngest(sessions, settings)
    ids = [f"jetson-{i:02d}" for i in range(BULK_RELOAD_MIN)]
    for device_id in ids:
        _add_device(sessions, device_id)
    assert desired.preload() == len(ids) and ingest.preload() == len(ids)
    apply(Invalidation("a", frozenset(ids[:2]), frozenset(ids[:1])), desired, ingest)
    assert desired.cached(ids[0]) is None and desired.cached(ids[1]) is None and desired.cached(ids[2]) is not None
    assert ingest.cached_auth(ids[0]) is None and ingest.cached_auth(ids[1]) is not None
    apply(Invalidation("a", frozenset(ids), ALL), desired, ingest)  # large: reloaded at once
    assert all(desired.cached(d) is not None and ingest.cached_auth(d) is not None for d in ids)

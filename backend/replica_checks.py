"""What replicas sharing a database must share besides it, checked at start: the signing key and the data dir.

Replicas must sign manifests with one key: the database records which.

A device pins the public key it got at registration and refuses manifests signed by any other, and its
heartbeats land on any replica. So the first replica records its key id in the ``control_plane`` table,
and a replica whose ``--signing-key`` differs refuses to start, naming both key ids. The private key
itself stays a file (copy the same ``signing_key`` file to every replica); it is never stored in the
database. During a key rotation a replica started with the new key and ``--previous-signing-key`` set to
the recorded one records the new key id, after which replicas still configured with the old key alone
are refused.

Replicas must also share the data dir (artifacts, uploads in progress): a model pushed through one replica
is downloaded through any other, and an upload's chunks may land on different replicas. The first replica
writes a random id to ``<data_dir>/.jetfleet-data-id`` and records it; a replica whose data dir lacks that
file (its own local directory instead of the shared volume) refuses to start.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from jetfleet.backend.models import ControlPlaneValue
from jetfleet.backend.signing import Signer
from jetfleet.errors import ConfigError

log = logging.getLogger("jetfleet.backend.replica_checks")
SIGNING_KEY_ID = "signing_key_id"
DATA_DIR_ID = "data_dir_id"
DATA_ID_FILE = ".jetfleet-data-id"
_HINT = "every replica sharing a database needs the same signing key file (docs/ha.md)"


def recorded(engine: Engine, name: str) -> str | None:
    with Session(engine) as session:
        row = session.get(ControlPlaneValue, name)
        return row.value if row else None


def claim(session: Session, name: str, value: str) -> tuple[ControlPlaneValue, bool]:
    """The row of ``name``, locked for the transaction, and whether this call recorded ``value`` (the first)."""
    insert = postgresql.insert(ControlPlaneValue).values(name=name, value=value, updated_at=datetime.now(timezone.utc))
    inserted = session.execute(insert.on_conflict_do_nothing(index_elements=["name"])
                               .returning(ControlPlaneValue.name)).first() is not None
    row = session.get(ControlPlaneValue, name, with_for_update=True)
    assert row is not None
    return row, inserted


def claim_data_dir(engine: Engine, data_dir: Path) -> None:
    """Check that ``data_dir`` is the directory the other replicas use (``ConfigError`` otherwise)."""
    marker = data_dir / DATA_ID_FILE
    mine = marker.read_text().strip() if marker.is_file() else None
    with Session(engine) as session, session.begin():
        row, first = claim(session, DATA_DIR_ID, mine or secrets.token_hex(16))
        if first and mine is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            marker.write_text(row.value + "\n")
        elif mine != row.value:
            raise ConfigError(f"{data_dir} is not the data dir the other replicas of this database use ({marker} "
                              f"{'is missing' if mine is None else 'holds another id'}): mount the same shared "
                              "directory as --data-dir on every replica (artifacts pushed through one replica are "
                              "downloaded through the others; docs/ha.md)", key="data_dir")


def refuse_missing_key(engine: Engine, path: Path) -> None:
    """Before a key would be created: when the database already records one, creating another is wrong."""
    key_id = recorded(engine, SIGNING_KEY_ID)
    if key_id is not None and not path.exists():
        raise ConfigError(f"no signing key at {path}, and the replicas sharing this database sign with key "
                          f"{key_id}: copy that key file here instead of letting this replica create a new one "
                          f"({_HINT})", key="signing_key")


def claim_signing_key(engine: Engine, signer: Signer) -> None:
    """Record this replica's key id, or check it against the recorded one (``ConfigError`` on a mismatch)."""
    current = signer.current.key_id
    with Session(engine) as session, session.begin():
        row, _ = claim(session, SIGNING_KEY_ID, current)
        if row.value == current:
            return
        if signer.previous is not None and row.value == signer.previous.key_id:
            log.warning("key rotation: the replicas of this database now sign with key %s (was %s)", current,
                        row.value)
            row.value, row.updated_at = current, datetime.now(timezone.utc)
            return
        raise ConfigError(f"this replica signs manifests with key {current}, but the replicas sharing this database "
                          f"sign with key {row.value}; devices would refuse this replica's manifests ({_HINT}; "
                          "to rotate, start with the new key and --previous-signing-key set to the old one)",
                          key="signing_key")

"""Replicas sharing a database must sign manifests with one key: the database records which.

A device pins the public key it got at registration and refuses manifests signed by any other, and its
heartbeats land on any replica. So the first replica records its key id in the ``control_plane`` table,
and a replica whose ``--signing-key`` differs refuses to start, naming both key ids. The private key
itself stays a file (copy the same ``signing_key`` file to every replica); it is never stored in the
database. During a key rotation a replica started with the new key and ``--previous-signing-key`` set to
the recorded one records the new key id, after which replicas still configured with the old key alone
are refused.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from jetfleet.backend.models import ControlPlaneValue
from jetfleet.backend.signing import Signer
from jetfleet.errors import ConfigError

log = logging.getLogger("jetfleet.backend.replica_keys")
SIGNING_KEY_ID = "signing_key_id"
_HINT = "every replica sharing a database needs the same signing key file (docs/ha.md)"


def recorded_key_id(engine: Engine) -> str | None:
    with Session(engine) as session:
        row = session.get(ControlPlaneValue, SIGNING_KEY_ID)
        return row.value if row else None


def refuse_missing_key(engine: Engine, path: Path) -> None:
    """Before a key would be created: when the database already records one, creating another is wrong."""
    recorded = recorded_key_id(engine)
    if recorded is not None and not path.exists():
        raise ConfigError(f"no signing key at {path}, and the replicas sharing this database sign with key "
                          f"{recorded}: copy that key file here instead of letting this replica create a new one "
                          f"({_HINT})", key="signing_key")


def claim_signing_key(engine: Engine, signer: Signer) -> None:
    """Record this replica's key id, or check it against the recorded one (``ConfigError`` on a mismatch)."""
    current = signer.current.key_id
    now = datetime.now(timezone.utc)
    with Session(engine) as session, session.begin():
        session.execute(postgresql.insert(ControlPlaneValue).on_conflict_do_nothing(index_elements=["name"]),
                        [{"name": SIGNING_KEY_ID, "value": current, "updated_at": now}])
        row = session.get(ControlPlaneValue, SIGNING_KEY_ID, with_for_update=True)
        assert row is not None
        if row.value == current:
            return
        if signer.previous is not None and row.value == signer.previous.key_id:
            log.warning("key rotation: the replicas of this database now sign with key %s (was %s)", current,
                        row.value)
            row.value, row.updated_at = current, now
            return
        raise ConfigError(f"this replica signs manifests with key {current}, but the replicas sharing this database "
                          f"sign with key {row.value}; devices would refuse this replica's manifests ({_HINT}; "
                          "to rotate, start with the new key and --previous-signing-key set to the old one)",
                          key="signing_key")

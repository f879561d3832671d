"""The durable results outbox: SQLite (WAL, ``synchronous=FULL``: every commit is fsync'd) in ``state_dir/jobs``.

* A result is written in the same transaction that marks its input file processed (and stores the file's
  partial sketches), so a crash either loses the whole step (the file is run again) or keeps both.
* A run's partial sketches become its sketch windows when the run ends (or at the next start, for a run
  cut short), in one transaction.
* Rows leave only when the control plane acknowledged them (:meth:`Outbox.ack`); a 4xx-refused row is
  moved to the quarantine table and counted.
* A processed mark (job, input sha256) is kept while its file is in the folder and for
  ``processed_retention_seconds`` after a complete run last saw it there (``at``: when it was processed or last
  seen), then dropped: a folder with a steady stream of new files does not grow the table for ever, and a
  file put back within the retention is still not run again.
* Size limit ``outbox_max_bytes``, policy when full: ``drop_oldest`` (default) keeps every sketch and drops
  the oldest raw results, counting them; ``pause`` starts no new run and processes no further file until
  uploads made room (the files wait on disk, nothing is dropped).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from jetfleet.agent.jobs.keys import Partial, groups, sketch_key
from jetfleet.agent.jobs.schedule import JobState
from jetfleet.jobs import JobResult, OutboxStatus, SketchWindow

FullPolicy = Literal["drop_oldest", "pause"]
QUARANTINE_KEEP = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE, body TEXT NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS processed (job TEXT NOT NULL, sha256 TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (job, sha256));
CREATE TABLE IF NOT EXISTS partials (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, job TEXT NOT NULL,
    model TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, tensor TEXT NOT NULL, idx INTEGER NOT NULL,
    at REAL NOT NULL, kll BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS partials_run ON partials (run_id);
CREATE TABLE IF NOT EXISTS job_state (job TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL,
    body TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL);
"""


@dataclass(frozen=True)
class OutboxSettings:
    max_bytes: int = 256 * 1024 * 1024
    policy: FullPolicy = "drop_oldest"
    batch_max_bytes: int = 4 * 1024 * 1024
    processed_retention_seconds: float = 30 * 86400.0


@dataclass(frozen=True)
class Row:
    id: int
    kind: str  # "result" | "sketch"
    key: str
    body: str


@dataclass(frozen=True)
class RunVersion:
    """Which run and model version a result belongs to (for its partial sketches)."""

    device_id: str
    job: str
    run_id: str
    model: str
    version: int | None


class Outbox:
    def __init__(self, path: Path, settings: OutboxSettings, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._bytes
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._bytes = before
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- job state -------------------------------------------------------------------------------------
    def job_states(self) -> dict[str, JobState]:
        return {str(job): JobState(**json.loads(str(body))) for job, body in self._read("SELECT job, body FROM "
                                                                                         "job_state")}

    def save_job_state(self, job: str, state: JobState) -> None:
        body = json.dumps({"spec": state.spec, "anchor": state.anchor, "last_slot": state.last_slot,
                           "generation": state.generation})
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO job_state (job, body) VALUES (?, ?)", (job, body))

    def forget_job(self, job: str) -> None:
        """Drop a job's schedule state and processed marks (its results still wait for upload)."""
        with self._tx() as db:
            db.execute("DELETE FROM job_state WHERE job = ?", (job,))
            db.execute("DELETE FROM processed WHERE job = ?", (job,))

    # -- results ---------------------------------------------------------------------------------------
    def processed(self, job: str, sha256: str) -> bool:
        return bool(self._read("SELECT 1 FROM processed WHERE job = ? AND sha256 = ?", (job, sha256)))

    def keep_processed(self, job: str, present: Sequence[str]) -> int:
        """After a complete run: ``present`` (the sha256 of every file in the folder) were seen now; marks of
        files gone longer than the retention are dropped. Returns how many were dropped.

        A present file's mark is rewritten only when it is older than 1% of the retention (at most an hour):
        a large folder on a short schedule costs lookups, not a write per file per run, and a file is
        forgotten at most that much before its full retention."""
        now = self.clock()
        retention = self.settings.processed_retention_seconds
        stale = now - min(retention * 0.01, 3600.0)
        with self._tx() as db:
            db.executemany("UPDATE processed SET at = ? WHERE job = ? AND sha256 = ? AND at < ?",
                           [(now, job, sha, stale) for sha in present])
            cursor = db.execute("DELETE FROM processed WHERE job = ? AND at < ?", (job, now - retention))
            return cursor.rowcount

    def record(self, result: JobResult, run: RunVersion, partials: Sequence[Partial] = ()) -> None:
        """Store ``result``, mark its input processed and keep its partial sketches: one transaction."""
        body = result.model_dump_json()
        now = self.clock()
        with self._tx() as db:
            cursor = db.execute("INSERT OR IGNORE INTO outbox (kind, key, body, bytes, created_at) "
                                "VALUES ('result', ?, ?, ?, ?)", (result.key, body, len(body), now))
            self._bytes += len(body) if cursor.rowcount else 0
            db.execute("INSERT OR IGNORE INTO processed (job, sha256, at) VALUES (?, ?, ?)",
                       (result.job, result.input_sha256, now))
            if run.version is not None:
                db.executemany("INSERT INTO partials (run_id, job, model, version, kind, tensor, idx, at, kll) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               [(run.run_id, run.job, run.model, run.version, p.kind, p.tensor, p.index, now, p.kll)
                                for p in partials])
            if self.settings.policy == "drop_oldest":
                self._drop_oldest(db)

    def _drop_oldest(self, db: sqlite3.Connection) -> None:
        if self._bytes <= self.settings.max_bytes:
            return
        dropped: list[int] = []
        for row_id, size in db.execute("SELECT id, bytes FROM outbox WHERE kind = 'result' ORDER BY id"):
            if self._bytes <= self.settings.max_bytes:
                break
            dropped.append(int(row_id))
            self._bytes -= int(size)
        db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in dropped])
        self._add(db, "dropped", len(dropped))

    def full(self) -> bool:
        with self._lock:
            return self._bytes >= self.settings.max_bytes

    def unfinished_runs(self) -> list[tuple[str, str]]:
        """(job, run_id) of runs whose partial sketches were never turned into windows."""
        return [(str(job), str(run)) for job, run in self._read("SELECT DISTINCT job, run_id FROM partials")]

    def finish_run(self, device_id: str, job: str, run_id: str) -> int:
        """Merge the run's partial sketches into one window per (version, kind, tensor, feature); returns how many."""
        if not self._read("SELECT 1 FROM partials WHERE run_id = ? LIMIT 1", (run_id,)):
            return 0
        from jetfleet.agent.jobs.sketches import merged  # numpy and DataSketches: only once a job ran

        with self._tx() as db:
            rows = db.execute("SELECT model, version, kind, tensor, idx, MIN(at) OVER w, MAX(at) OVER w, kll "
                              "FROM partials WHERE run_id = ? "
                              "WINDOW w AS (PARTITION BY version, kind, tensor, idx) ORDER BY id", (run_id,))
            windows = []
            for (model, version, kind, tensor, index, start, end), blobs in groups(rows.fetchall()):
                count, kll_b64 = merged(blobs)
                windows.append(SketchWindow(
                    key=sketch_key(device_id, job, run_id, int(version), str(kind), str(tensor), int(index)),
                    model=str(model), version=int(version), kind=kind, tensor=str(tensor), index=int(index),
                    count=count, kll_b64=kll_b64, window_start=_utc(float(start)), window_end=_utc(float(end))))
            now = self.clock()
            for window in windows:
                body = window.model_dump_json()
                cursor = db.execute("INSERT OR IGNORE INTO outbox (kind, key, body, bytes, created_at) "
                                    "VALUES ('sketch', ?, ?, ?, ?)", (window.key, body, len(body), now))
                self._bytes += len(body) if cursor.rowcount else 0
            db.execute("DELETE FROM partials WHERE run_id = ?", (run_id,))
            if self.settings.policy == "drop_oldest":
                self._drop_oldest(db)
        return len(windows)

    # -- upload ----------------------------------------------------------------------------------------
    def next_rows(self, max_items: int) -> list[Row]:
        """The oldest rows of each kind: at most ``max_items`` and about ``batch_max_bytes`` per kind."""
        rows: list[Row] = []
        for kind in ("result", "sketch"):
            size = 0
            for row_id, key, body, length in self._read("SELECT id, key, body, bytes FROM outbox WHERE kind = ? "
                                                        "ORDER BY id LIMIT ?", (kind, max_items)):
                if rows and size + int(str(length)) > self.settings.batch_max_bytes:
                    break
                size += int(str(length))
                rows.append(Row(int(str(row_id)), kind, str(key), str(body)))
        return rows

    def ack(self, rows: Sequence[Row]) -> None:
        with self._tx() as db:
            self._delete(db, rows)

    def quarantine(self, rows: Sequence[Row], reason: str) -> None:
        now = self.clock()
        with self._tx() as db:
            db.executemany("INSERT INTO quarantine (kind, key, body, reason, at) VALUES (?, ?, ?, ?, ?)",
                           [(r.kind, r.key, r.body, reason[:2000], now) for r in rows])
            self._delete(db, rows)
            db.execute("DELETE FROM quarantine WHERE id <= (SELECT MAX(id) FROM quarantine) - ?", (QUARANTINE_KEEP,))
            self._add(db, "quarantined", len(rows))

    def _delete(self, db: sqlite3.Connection, rows: Sequence[Row]) -> None:
        for row in rows:
            size = db.execute("DELETE FROM outbox WHERE id = ? RETURNING bytes", (row.id,)).fetchone()
            self._bytes -= int(size[0]) if size else 0

    # -- counters and status ----------------------------------------------------------------------------
    def count(self, name: str, amount: int = 1) -> None:
        with self._tx() as db:
            self._add(db, name, amount)

    @staticmethod
    def _add(db: sqlite3.Connection, name: str, amount: int) -> None:
        if amount:
            db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def counters(self) -> dict[str, int]:
        return {str(name): int(str(value)) for name, value in self._read("SELECT name, value FROM counters")}

    def status(self) -> OutboxStatus:
        pending, oldest = self._read("SELECT COUNT(*), MIN(created_at) FROM outbox")[0]
        counters = self.counters()
        age = max(0.0, self.clock() - float(str(oldest))) if oldest is not None else None
        return OutboxStatus(pending=int(str(pending)), oldest_age_seconds=age,
                            dropped_total=counters.get("dropped", 0),
                            upload_failures_total=counters.get("upload_failures", 0))

    @property
    def pending_bytes(self) -> int:
        with self._lock:
            return self._bytes


def batch_body(rows: Sequence[Row]) -> bytes:
    """The JSON of a ResultsBatch with ``rows`` (their stored bodies are already validated JSON)."""
    results = ",".join(r.body for r in rows if r.kind == "result")
    sketches = ",".join(r.body for r in rows if r.kind == "sketch")
    return f'{{"results":[{results}],"sketches":[{sketches}]}}'.encode()


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)

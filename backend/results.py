"""Results and drift sketches from devices: decode a bounded (gzip) batch, check it, store each key once.

A batch is stored in one transaction with ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING key``, so a
redelivered batch (the agent was killed between upload and acknowledgement) adds nothing and the
acknowledgement counts the duplicates. A bad batch is refused whole (4xx naming the field): the agent
quarantines it, and nothing of it is stored.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from jetfleet.backend.artifacts import InvalidField
from jetfleet.backend.job_schemas import ResultRecord
from jetfleet.backend.jobs_models import JobResultRow, SketchRow
from jetfleet.errors import PermanentError
from jetfleet.jobs import ResultsAck, ResultsBatch

MAX_BODY_BYTES = 16 << 20  # compressed or not, as received
MAX_DECODED_BYTES = 64 << 20  # after gunzip
DEFAULT_RESULTS_PAGE = 1000


class BodyTooLarge(PermanentError):
    """The batch is over the size limit (HTTP 413)."""


class BadBatch(PermanentError):
    """The batch failed validation (HTTP 422); ``errors`` are FastAPI-style {loc, msg, type} entries."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise InvalidField("Content-Encoding", f"{content_encoding!r} is not supported (use gzip or none)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_DECODED_BYTES)
        if inflater.unconsumed_tail:
            raise BodyTooLarge(f"body: over {MAX_DECODED_BYTES} bytes once decompressed")
        data += inflater.flush()
    except zlib.error as exc:
        raise InvalidField("body", f"not valid gzip data: {exc}") from exc
    if not inflater.eof:
        raise InvalidField("body", "the gzip stream is truncated")
    return data


def parse_batch(data: bytes, device_id: str) -> tuple[ResultsBatch, list[bytes]]:
    """The validated batch and each sketch's bytes; every key must belong to ``device_id``."""
    try:
        batch = ResultsBatch.model_validate_json(data)
    except ValidationError as exc:
        raise BadBatch([{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                        for e in exc.errors(include_url=False, include_context=False, include_input=False)]
                       ) from exc
    errors: list[dict[str, Any]] = []
    prefix = f"{device_id}."
    keys = [("results", i, r.key) for i, r in enumerate(batch.results)]
    keys += [("sketches", i, s.key) for i, s in enumerate(batch.sketches)]
    errors.extend(_error([kind, i, "key"], f"must start with the device id and a dot ('{prefix}')")
                  for kind, i, key in keys if not key.startswith(prefix))
    sketches = []
    for i, sketch in enumerate(batch.sketches):
        raw, problem = _sketch_bytes(sketch.kll_b64, sketch.count)
        if problem:
            errors.append(_error(["sketches", i, "kll_b64"], problem))
        if sketch.window_end < sketch.window_start:
            errors.append(_error(["sketches", i, "window_end"], "is before window_start"))
        sketches.append(raw)
    if errors:
        raise BadBatch(errors)
    return batch, sketches


def _error(loc: list[Any], msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": "value_error"}


def _sketch_bytes(text: str, count: int) -> tuple[bytes, str | None]:
    from datasketches import kll_floats_sketch

    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b"", "not valid base64"
    try:
        sketch = kll_floats_sketch.deserialize(raw)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:  # what the C++ binding raises
        return b"", f"not a serialized KLL floats sketch ({exc})"
    if sketch.n != count:
        return b"", f"the sketch holds {sketch.n} values but count says {count}"
    return raw, None


def store(session: Session, device_id: str, batch: ResultsBatch, sketches: list[bytes], now: datetime) -> ResultsAck:
    """Insert what is new (one statement per kind); returns what was new and what was known."""
    results = {r.key: {"key": r.key, "device_id": device_id, "job": r.job, "run_id": r.run_id, "input": r.input,
                       "input_sha256": r.input_sha256, "model": r.model, "version": r.version, "outputs": r.outputs,
                       "error": r.error, "created_at": r.created_at, "received_at": now} for r in batch.results}
    rows = {s.key: {"key": s.key, "device_id": device_id, "model": s.model, "version": s.version, "kind": s.kind,
                    "tensor": s.tensor, "feature_index": s.index, "count": s.count, "sketch": raw,
                    "window_start": s.window_start, "window_end": s.window_end, "received_at": now}
            for s, raw in zip(batch.sketches, sketches, strict=True)}
    new_results = _insert_new(session, JobResultRow.__table__, list(results.values()))  # type: ignore[arg-type]
    new_sketches = _insert_new(session, SketchRow.__table__, list(rows.values()))  # type: ignore[arg-type]
    return ResultsAck(results_accepted=new_results, results_duplicate=len(batch.results) - new_results,
                      sketches_accepted=new_sketches, sketches_duplicate=len(batch.sketches) - new_sketches)


def _insert_new(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)
    return len(session.execute(statement, rows).all())


def list_results(session: Session, job: str, device_id: str | None, *, after_id: int = 0,
                 limit: int = DEFAULT_RESULTS_PAGE) -> list[ResultRecord]:
    query = select(JobResultRow).where(JobResultRow.job == job, JobResultRow.id > after_id)
    if device_id is not None:
        query = query.where(JobResultRow.device_id == device_id)
    rows = session.scalars(query.order_by(JobResultRow.id).limit(limit))
    return [ResultRecord.model_validate(row, from_attributes=True) for row in rows]


def prune(session: Session, older_than: datetime) -> int:
    """Delete raw results received before ``older_than`` (the retention setting); returns how many."""
    outcome = session.execute(delete(JobResultRow).where(JobResultRow.received_at < older_than))
    return int(getattr(outcome, "rowcount", 0) or 0)

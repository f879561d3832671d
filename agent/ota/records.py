"""Per-model deployment records: state, reason, last-known-good, failures (persisted in the state dir)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from jetfleet.files import write_atomic
from jetfleet.manifest import DesiredModel

log = logging.getLogger("jetfleet.agent.ota")


@dataclass(frozen=True)
class Failure:
    """Why a desired entry (version, sha256, generation) stopped; retried after ``retry_at`` (None: never)."""

    version: int
    sha256: str
    generation: int
    reason: str
    retry_at: float | None

    def matches(self, model: DesiredModel) -> bool:
        return (self.version, self.sha256, self.generation) == (model.version, model.sha256, model.generation)

    def blocks(self, model: DesiredModel, now: float) -> bool:
        return self.matches(model) and (self.retry_at is None or now < self.retry_at)


@dataclass(frozen=True)
class ModelRecord:
    name: str
    state: str | None = None
    reason: str | None = None
    target_version: int | None = None
    last_known_good: int | None = None
    failure: Failure | None = None
    attempts: int = 0  # consecutive failures of the current target (backoff)
    backoff_until: float | None = None  # after a failed pipeline: no steps before this (wall clock)
    progress_ratio: float | None = None

    def evolve(self, **changes: Any) -> ModelRecord:
        return replace(self, **changes)


class RecordStore:
    """``state_dir/ota/models.json``, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, ModelRecord] = self._load()

    def _load(self) -> dict[str, ModelRecord]:
        try:
            data = json.loads(self.path.read_text())
            return {name: _record(item) for name, item in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable deployment records %s: %s", self.path, exc)
            return {}

    def get(self, name: str) -> ModelRecord:
        return self.records.get(name) or ModelRecord(name)

    def put(self, record: ModelRecord) -> None:
        if self.records.get(record.name) == record:
            return
        self.records[record.name] = record
        self._save()

    def forget(self, name: str) -> None:
        if self.records.pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({name: asdict(r) for name, r in self.records.items()}, indent=1, sort_keys=True)
        write_atomic(self.path, body)


def _record(item: dict[str, Any]) -> ModelRecord:
    failure = item.pop("failure", None)
    return ModelRecord(**item, failure=Failure(**failure) if failure else None)

"""Bounded admission to the speech model: ``workers`` transcribe at once, ``max_queue`` wait, the rest
are refused at once (503 + Retry-After) instead of piling up."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from jetfleet.voice.errors import ServerBusy


class AdmissionGate:
    def __init__(self, workers: int, max_queue: int) -> None:
        self.workers = workers
        self.max_queue = max_queue
        self.in_flight = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(workers)
        self.typical_job_s = 1.0  # updated by the caller with recent job times, for Retry-After

    @property
    def capacity(self) -> int:
        return self.workers + self.max_queue

    def retry_after_s(self) -> int:
        """Roughly when a place frees up: the queue ahead of a newcomer, drained by the workers."""
        return max(1, math.ceil(self.typical_job_s * (self.waiting + 1) / self.workers))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.in_flight + self.waiting >= self.capacity:
            raise ServerBusy(f"the speech model is busy ({self.in_flight} running, {self.waiting} queued,"
                             f" queue limit {self.max_queue}); retry later", delay=self.retry_after_s())
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

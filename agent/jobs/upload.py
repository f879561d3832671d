"""Ships the outbox to ``POST /api/v1/edge-devices/{id}/results`` in bounded, gzip-compressed batches.

Rows are deleted only after the control plane's acknowledgement; the control plane stores each key once,
so a batch sent again after a crash between upload and acknowledgement is counted as duplicates, not
stored twice. Temporary failures (no answer, 5xx, 429, an expired token) are retried with jittered
exponential backoff; a batch refused with a 4xx is split in halves until the refused items are found,
and those are quarantined (``state_dir/jobs/outbox.sqlite3``, table ``quarantine``) and counted.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable, Sequence

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from jetfleet.agent.client import BackendClient
from jetfleet.agent.heartbeat import StopRequested
from jetfleet.agent.jobs.outbox import Outbox, Row, batch_body
from jetfleet.errors import AuthError, NotFoundError, PermanentError, TemporaryError
from jetfleet.jobs import MAX_BATCH_ITEMS

log = logging.getLogger("jetfleet.agent.jobs.upload")
IDLE_SECONDS = 5.0


class Uploader:
    def __init__(self, outbox: Outbox, client: BackendClient, device_id: str, token: Callable[[], str | None],
                 retry_max_seconds: float = 30.0, batch_items: int = MAX_BATCH_ITEMS) -> None:
        self.outbox = outbox
        self.client = client
        self.device_id = device_id
        self.token = token
        self.retry_max_seconds = retry_max_seconds
        self.batch_items = batch_items
        self.wake = asyncio.Event()
        self._failing = False

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if not await self._retrying(stop)(self._ship_next):
                    await self._idle(stop)
        except StopRequested:
            return

    async def _ship_next(self) -> bool:
        """Ship the oldest rows; False when there is nothing to ship (or no token yet). Every attempt reads the
        rows again: while uploads fail, the size policy may drop rows, and those must not be sent."""
        rows = await asyncio.to_thread(self.outbox.next_rows, self.batch_items)
        if not rows or self.token() is None:
            return False
        await self._ship(rows)
        return True

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        await asyncio.wait(waiters, timeout=IDLE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self.wake.clear()

    def _retrying(self, stop: asyncio.Event) -> AsyncRetrying:
        async def sleep(delay: float) -> None:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                return
            raise StopRequested()

        return AsyncRetrying(wait=wait_random_exponential(multiplier=0.25, max=self.retry_max_seconds),
                             retry=retry_if_exception_type(TemporaryError), sleep=sleep,
                             before_sleep=self._on_retry, reraise=True)

    def _on_retry(self, state: RetryCallState) -> None:
        self.outbox.count("upload_failures")
        if not self._failing:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("results upload failed (%s); retrying with backoff, results stay in the outbox", exc)
        self._failing = True

    async def _ship(self, rows: Sequence[Row]) -> None:
        token = self.token()
        if token is None:
            raise TemporaryError("not registered yet")
        body = await asyncio.to_thread(lambda: gzip.compress(batch_body(rows), compresslevel=6))
        try:
            ack = await self.client.post_results(self.device_id, token, body)
        except (AuthError, NotFoundError) as exc:  # the heartbeat loop registers again; the token follows
            raise TemporaryError(f"the control plane does not accept this device's token yet: {exc}") from exc
        except PermanentError as exc:
            await self._refused(rows, str(exc))
            return
        await asyncio.to_thread(self.outbox.ack, rows)
        if self._failing:
            log.info("results upload works again")
        self._failing = False
        log.debug("uploaded %d items: %s", len(rows), ack)

    async def _refused(self, rows: Sequence[Row], reason: str) -> None:
        if len(rows) == 1:
            log.error("the control plane refused result %s (%s); quarantined", rows[0].key, reason)
            await asyncio.to_thread(self.outbox.quarantine, rows, reason)
            return
        half = len(rows) // 2
        await self._ship(rows[:half])
        await self._ship(rows[half:])

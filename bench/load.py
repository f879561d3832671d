"""Bounded load generators for the gateway's tests and benchmark (httpx, asyncio).

``open_loop`` sends at a fixed rate whatever the answers (a stream of commands arriving); ``closed_loop``
keeps a fixed number of requests in flight (throughput). Both are bounded in count and in time, and
record per request who answered (the JSON ``node`` field or the ``X-Node`` header) and how.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

RequestBody = Callable[[int], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Outcome:
    sent_at: float  # seconds since the run started
    latency: float
    status: int | None  # None: no HTTP answer (connection error or client timeout)
    node: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    json: RequestBody | None = None
    files: Callable[[int], Mapping[str, Any]] | None = None


async def _send(client: httpx.AsyncClient, request: Request, index: int, started: float) -> Outcome:
    sent = time.perf_counter()
    try:
        response = await client.request(request.method, request.url,
                                        json=request.json(index) if request.json else None,
                                        files=request.files(index) if request.files else None)
    except httpx.HTTPError as exc:
        return Outcome(sent - started, time.perf_counter() - sent, None, None, f"{type(exc).__name__}: {exc}")
    latency = time.perf_counter() - sent
    return Outcome(sent - started, latency, response.status_code, _node(response),
                   None if response.is_success else response.text[:200])


def _node(response: httpx.Response) -> str | None:
    header: str | None = response.headers.get("x-node")
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        return None
    node = body.get("node") if isinstance(body, dict) else None
    return node if isinstance(node, str) else None


async def open_loop(request: Request, *, rate: float, count: int, timeout: float = 10.0,
                    epoch: float | None = None, sink: list[Outcome] | None = None) -> list[Outcome]:
    """Send ``count`` requests at ``rate`` per second, each bounded by ``timeout``.

    Request ``i`` is due at ``epoch + i / rate`` (``epoch``: a ``time.perf_counter()`` value, default now),
    and ``Outcome.sent_at`` counts from ``epoch``, so a caller can line events up with the stream. Each
    outcome is also appended to ``sink`` as soon as it is known (to watch a stream while it runs).
    """
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        started = time.perf_counter() if epoch is None else epoch
        tasks = []
        for index in range(count):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send_into(sink, client, request, index, started)))
        return list(await asyncio.gather(*tasks))


async def _send_into(sink: list[Outcome] | None, client: httpx.AsyncClient, request: Request, index: int,
                     started: float) -> Outcome:
    outcome = await _send(client, request, index, started)
    if sink is not None:
        sink.append(outcome)
    return outcome


async def closed_loop(request: Request, *, concurrency: int, duration: float, max_requests: int = 1_000_000,
                      timeout: float = 30.0) -> tuple[list[Outcome], float]:
    """Keep ``concurrency`` requests in flight for ``duration`` seconds; returns outcomes and elapsed time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    outcomes: list[Outcome] = []
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            while time.perf_counter() < deadline and len(outcomes) < max_requests:
                outcomes.append(await _send(client, request, len(outcomes), started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return outcomes, time.perf_counter() - started


def failures(outcomes: Sequence[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if not o.ok]


def share_by_node(outcomes: Iterable[Outcome]) -> Counter[str]:
    return Counter(o.node or "?" for o in outcomes if o.ok)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


class BackgroundStream:
    """An ``open_loop`` stream in a thread; ``now()`` is on the clock of ``Outcome.sent_at``."""

    def __init__(self, request: Request, *, rate: float, count: int, timeout: float = 20.0) -> None:
        self.outcomes: list[Outcome] = []
        self._live: list[Outcome] = []
        self.epoch = time.perf_counter() + 0.2  # the first request leaves once the thread runs

        def target() -> None:
            self.outcomes.extend(asyncio.run(open_loop(request, rate=rate, count=count, timeout=timeout,
                                                       epoch=self.epoch, sink=self._live)))

        self.thread = threading.Thread(target=target, name="load", daemon=True)
        self.thread.start()

    def now(self) -> float:
        return time.perf_counter() - self.epoch

    def sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, at - self.now()))

    def outcomes_so_far(self) -> list[Outcome]:
        return list(self._live)

    def join(self, timeout: float) -> list[Outcome]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError("the load stream did not finish in time")
        return self.outcomes

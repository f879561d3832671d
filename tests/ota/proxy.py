"""A real HTTP proxy between agents and the control plane, for fault injection in OTA tests.

It forwards every request unchanged unless told otherwise: ``rewrite_heartbeat`` edits heartbeat
answers (tampering, replaying or expiring manifests), ``artifact_rate`` throttles artifact downloads
(bytes/s) so an agent can be killed mid-download, and every artifact request is logged with its
``Range`` header and the bytes actually sent. For results uploads: ``results_status`` answers them
itself (e.g. 503: the control plane "down" for results only), ``refuse_results_with`` answers 422 to
uploads that contain a given text (one bad item), and ``hold_results`` forwards them but
withholds the answer (the control plane stored the batch; the acknowledgement never arrives).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tests.support.processes import free_port, http_ok, wait_until

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class ArtifactRequest:
    path: str
    range: str | None
    status: int
    bytes_sent: int = 0


class BackendProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rewrite_heartbeat: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.artifact_rate: float | None = None
        self.artifacts: list[ArtifactRequest] = []
        self.heartbeats: list[dict[str, Any]] = []  # the answers as the backend gave them
        self.results_status: int | None = None
        self.hold_results = False
        self.refuse_results_with: str | None = None  # answer 422 to a results upload whose body contains this
        self.results_forwarded: list[int] = []  # status codes of results uploads the control plane answered
        self.heartbeat_requests: list[dict[str, Any]] = []  # the last 50 heartbeat bodies the agents sent
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.target, timeout=60)
        request = Request(scope, receive)
        response = await self._forward(request)
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        assert self._client is not None
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        heartbeat = path.endswith("/heartbeat")
        results = request.method == "POST" and path.endswith("/results")
        if results and self.results_status is not None:
            return Response(b'{"detail": "injected"}', status_code=self.results_status)
        if results and self.refuse_results_with is not None:
            raw = await request.body()
            text = (gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw).decode()
            if self.refuse_results_with in text:
                return Response(b'{"detail": "injected: refused item"}', status_code=422)
        if heartbeat and self.rewrite_heartbeat is not None:
            headers.pop("if-none-match", None)
        if heartbeat:
            self.heartbeat_requests = [*self.heartbeat_requests[-49:], json.loads(await request.body())]
        upstream = self._client.build_request(request.method, path, headers=headers, content=await request.body())
        answer = await self._client.send(upstream, stream=True)
        out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        if "/artifacts/" in path:
            record = ArtifactRequest(path, request.headers.get("range"), answer.status_code)
            self.artifacts.append(record)
            return StreamingResponse(self._relay(answer, record), status_code=answer.status_code, headers=out_headers)
        body = await answer.aread()
        await answer.aclose()
        if results:
            self.results_forwarded.append(answer.status_code)
            for _ in range(1200):  # at most 2 minutes
                if not self.hold_results:
                    break
                await asyncio.sleep(0.1)
        if heartbeat and answer.status_code == 200:
            data = json.loads(body)
            self.heartbeats.append(data)
            if self.rewrite_heartbeat is not None:
                body = json.dumps(self.rewrite_heartbeat(data)).encode()
                out_headers.pop("etag", None)
        return Response(body, status_code=answer.status_code, headers=out_headers)

    async def _relay(self, answer: httpx.Response, record: ArtifactRequest) -> AsyncIterator[bytes]:
        try:
            async for chunk in answer.aiter_raw(256 * 1024):
                record.bytes_sent += len(chunk)
                yield chunk
                if self.artifact_rate:
                    await asyncio.sleep(len(chunk) / self.artifact_rate)
        finally:
            await answer.aclose()


    async def serve(self, server: uvicorn.Server) -> None:
        try:
            await server.serve()
        finally:
            if self._client is not None:
                await self._client.aclose()


@contextmanager
def backend_proxy(target: str) -> Iterator[BackendProxy]:
    proxy = BackendProxy(target)
    server = uvicorn.Server(uvicorn.Config(proxy, host="127.0.0.1", port=proxy.port, log_level="warning",
                                           lifespan="off", loop="asyncio", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=lambda: asyncio.run(proxy.serve(server)), name="backend-proxy", daemon=True)
    thread.start()
    try:
        wait_until(lambda: http_ok(f"{proxy.url}/health"), 20, what="backend proxy")
        yield proxy
    finally:
        server.should_exit = True
        thread.join(10)

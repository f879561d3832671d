"""A stand-in for the voice server (``jetfleet voice serve --robot none``) until the voice branch lands.

Same HTTP surface as the real service's: ``GET /health``, ``POST /api/voice/listen`` with a text command,
``GET /api/voice/status``; a ``--delay-ms`` simulates inference time. Run: ``python -m tests.gateway.standin_voice``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app(name: str, delay_seconds: float) -> Starlette:
    latencies: list[float] = []

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "robot_connected": False, "whisper_model": "stand-in", "backend": "none",
                             "language": "nl", "node": name})

    async def listen(request: Request) -> JSONResponse:
        started = time.perf_counter()
        body = await request.json()
        await asyncio.sleep(delay_seconds)
        latencies.append((time.perf_counter() - started) * 1000)
        return JSONResponse({"status": "ok", "command": body.get("command"), "robot": "none",
                             "timings_ms": {"total": latencies[-1]}, "node": name})

    async def status(_request: Request) -> JSONResponse:
        p50 = statistics.median(latencies) if latencies else None
        return JSONResponse({"command_count": len(latencies), "latency_ms": {"p50": p50}, "node": name})

    return Starlette(routes=[Route("/health", health), Route("/api/voice/listen", listen, methods=["POST"]),
                             Route("/api/voice/status", status)])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    args = parser.parse_args()
    uvicorn.run(create_app(args.node_name, args.delay_ms / 1000), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()

"""A minimal HTTP node for gateway benchmarks: ``/health`` and an echo of every other path.

``python -m jetfleet.bench.echo_node --port P --name NAME [--delay-ms 20]`` answers every path except ``/health``
after ``delay-ms`` (an await, like a node waiting on its accelerator) with ``{"node", "path", "status"}``
and an ``X-Node`` header, so a load generator sees which node served each request. The benchmark uses
it for the proxy-overhead runs, where the node must cost as little as possible; everything that
measures voice behaviour uses the real voice service.
"""

from __future__ import annotations

import argparse
import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app(name: str, delay_seconds: float) -> Starlette:
    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "node": name})

    async def echo(request: Request) -> JSONResponse:
        await request.body()
        if delay_seconds > 0:
            await asyncio.sleep(delay_seconds)
        return JSONResponse({"node": name, "path": request.url.path, "status": "ok"}, headers={"X-Node": name})

    return Starlette(routes=[Route("/health", health), Route("/{path:path}", echo, methods=["GET", "POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="Wait this long before answering.")
    args = parser.parse_args()
    uvicorn.run(create_app(args.name, args.delay_ms / 1000), host=args.host, port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()

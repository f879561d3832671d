"""The HTTP surface: KServe v2 routes plus ``/metrics``. Handlers only adapt; the host does the work."""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException

import jetfleet
from jetfleet.modelfiles.errors import InferenceRequestError
from jetfleet.modelserver.host import ModelHost
from jetfleet.modelserver.kserve import HEADER_LENGTH, check_inputs, decode_request, encode_response, select_outputs
from jetfleet.modelserver.metrics import InferenceMetrics

log = logging.getLogger(__name__)
SERVER_NAME = "jetfleet-model-server"


def create_app(host: ModelHost, metrics: InferenceMetrics, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(title=SERVER_NAME, version=jetfleet.__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(InferenceRequestError)
    async def refused(_: Request, exc: InferenceRequestError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": jetfleet.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, Any]:
        host.ready_model()
        return {}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        host.check_target(name, version)
        model = host.ready_model()
        return {"name": host.name, "versions": [host.version], "platform": model.platform,
                "inputs": [spec.to_json() for spec in model.signature.inputs],
                "outputs": [spec.to_json() for spec in model.signature.outputs]}

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> dict[str, Any]:
        host.check_target(name, version)
        host.ready_model()
        return {"name": host.name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        started = time.perf_counter()
        try:
            response = await _infer(host, request, name, version)
        except InferenceRequestError as exc:
            metrics.failure(exc.status)
            return error_response(exc.status, str(exc))
        except Exception as exc:
            log.exception("inference failed")
            metrics.failure(500)
            return error_response(500, f"inference failed: {type(exc).__name__}: {exc}")
        metrics.success(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _infer(host: ModelHost, request: Request, name: str, version: str | None) -> Response:
    host.check_target(name, version)
    model = host.ready_model()
    body = _decompress(await request.body(), request.headers.get("content-encoding"))
    decoded = decode_request(body, _header_length(request.headers.get(HEADER_LENGTH)))
    check_inputs(decoded, model.signature, host.name)
    selected = select_outputs(decoded, model.signature, host.name)
    outputs = await host.infer({tensor: array for tensor, (_, array) in decoded.inputs.items()})
    payload, header_length = encode_response(host.name, host.version, decoded.id, outputs, selected)
    if header_length is None:
        return Response(payload, media_type="application/json")
    return Response(payload, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InferenceRequestError(f"{HEADER_LENGTH} must be an integer, got {value!r}") from None


def _decompress(body: bytes, encoding: str | None) -> bytes:
    """tritonclient can gzip or deflate the request body (request_compression_algorithm)."""
    if encoding in (None, "", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InferenceRequestError(f"unsupported Content-Encoding {encoding!r} (gzip and deflate are)")
    try:
        return zlib.decompress(body, wbits=31 if encoding == "gzip" else 15)
    except zlib.error as exc:
        raise InferenceRequestError(f"body is not valid {encoding} data: {exc}") from exc


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)

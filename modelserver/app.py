"""The HTTP surface: KServe v2 routes plus ``/metrics``. Handlers only adapt; the host does the work."""

from __future__ import annotations

import logging
import time
import zlib
from typing import Any

from fastapi import FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException

import jetfleet
from jetfleet.httpapi import allowed_methods, errors, finish_contract
from jetfleet.modelfiles.errors import InferenceRequestError
from jetfleet.modelserver.host import ModelHost
from jetfleet.modelserver.kserve import (
    HEADER_LENGTH,
    InferRequestHeader,
    check_inputs,
    decode_request,
    encode_response,
    select_outputs,
)
from jetfleet.modelserver.metrics import InferenceMetrics

log = logging.getLogger(__name__)
SERVER_NAME = "jetfleet-model-server"


class KServeError(BaseModel):
    """Every error answer, as the KServe v2 protocol shapes it."""

    error: str


_NOT_READY = errors(503, model=KServeError)
_INFER_DOC = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": InferRequestHeader.model_json_schema(ref_template="#/components/schemas/{model}")},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary", "description": (
        f"binary tensor extension: the JSON header (its length in {HEADER_LENGTH}), then the tensors' bytes")}}}}}
_INFER_ERRORS = {**errors(400, 413, 415, 503, model=KServeError),
                 200: {"description": "Outputs (JSON, or with binary_data_output the binary tensor extension)",
                       "content": {"application/json": {}, "application/octet-stream": {}}}}
_PROMETHEUS_TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def create_app(host: ModelHost, metrics: InferenceMetrics, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(title=SERVER_NAME, version=jetfleet.__version__, docs_url=None, redoc_url=None,
                  description="KServe v2 inference protocol (HTTP/REST) for one model version.")

    # This server serves one model: the schema says so (any other name is a 404).
    served = Path(json_schema_extra={"enum": [host.name]})

    @app.exception_handler(InferenceRequestError)
    async def refused(_: Request, exc: InferenceRequestError) -> JSONResponse:
        return error_response(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        response = error_response(exc.status_code, str(exc.detail))
        if exc.status_code == 405:
            response.headers["Allow"] = allowed_methods(app, request.url.path)
        return response

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": jetfleet.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {}

    @app.get("/v2/health/ready", responses=_NOT_READY)
    async def ready() -> dict[str, Any]:
        host.ready_model()
        return {}

    @app.get("/v2/models/{name}", responses=_NOT_READY)
    @app.get("/v2/models/{name}/versions/{version}", responses=_NOT_READY)
    async def model_metadata(name: str = served, version: str | None = None) -> dict[str, Any]:
        host.check_target(name, version)
        model = host.ready_model()
        return {"name": host.name, "versions": [host.version], "platform": model.platform,
                "inputs": [spec.to_json() for spec in model.signature.inputs],
                "outputs": [spec.to_json() for spec in model.signature.outputs]}

    @app.get("/v2/models/{name}/ready", responses=_NOT_READY)
    @app.get("/v2/models/{name}/versions/{version}/ready", responses=_NOT_READY)
    async def model_ready(name: str = served, version: str | None = None) -> dict[str, Any]:
        host.check_target(name, version)
        host.ready_model()
        return {"name": host.name, "ready": True}

    @app.post("/v2/models/{name}/infer", openapi_extra=_INFER_DOC, responses=_INFER_ERRORS)
    @app.post("/v2/models/{name}/versions/{version}/infer", openapi_extra=_INFER_DOC, responses=_INFER_ERRORS)
    async def infer(request: Request, name: str = served, version: str | None = None) -> Response:
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

    @app.get("/metrics", response_class=PlainTextResponse, responses=_PROMETHEUS_TEXT)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    finish_contract(app, error_models={"/": KServeError})
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

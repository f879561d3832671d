"""HTTP endpoints of headless jobs: the admin API (/api/v1/jobs) and the devices' results upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from jetfleet.backend import appstate, jobs_registry, model_registry, results
from jetfleet.backend.auth import device_caller, require_deploy, require_read
from jetfleet.backend.ingest import HeartbeatIngest
from jetfleet.backend.job_schemas import CreateJob, JobRecord, ResultRecord, RunJob, RunResult
from jetfleet.httpapi import errors
from jetfleet.jobs import ResultsAck

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
device_router = APIRouter(prefix="/api/v1/edge-devices", tags=["devices"])


@router.post("", response_model=JobRecord, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(require_deploy)], responses=errors(404))
def create_job(body: CreateJob, request: Request) -> JobRecord:
    """A new job; its devices get it in their next signed manifest."""
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        job, devices = jobs_registry.create(session, body, now)
        model_registry.bump_serials(session, devices)
        record = jobs_registry.record(session, job)
    appstate.desired(request).invalidate(devices)
    return record


@router.get("", response_model=list[JobRecord], dependencies=[Depends(require_read)])
def list_jobs(request: Request) -> list[JobRecord]:
    with appstate.sessions(request).begin() as session:
        return jobs_registry.list_jobs(session)


@router.get("/{name}", response_model=JobRecord, dependencies=[Depends(require_read)])
def get_job(name: str, request: Request) -> JobRecord:
    with appstate.sessions(request).begin() as session:
        return jobs_registry.record(session, jobs_registry.get(session, name))


@router.post("/{name}/run", response_model=RunResult, dependencies=[Depends(require_deploy)])
def run_job(name: str, body: RunJob, request: Request) -> RunResult:
    """Run the job once more now, on all its devices or the given ones (their run_generation grows)."""
    now = appstate.now()
    with appstate.sessions(request).begin() as session:
        devices = jobs_registry.run_now(session, name, body.devices, now)
        model_registry.bump_serials(session, devices)
    appstate.desired(request).invalidate(devices)
    return RunResult(name=name, devices=devices)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(require_deploy)])
def delete_job(name: str, request: Request) -> None:
    """Remove the job from its devices' manifests (its stored results stay until the retention)."""
    with appstate.sessions(request).begin() as session:
        devices = jobs_registry.delete(session, name)
        model_registry.bump_serials(session, devices)
    appstate.desired(request).invalidate(devices)


@router.get("/{name}/results", response_model=list[ResultRecord], dependencies=[Depends(require_read)])
def job_results(name: str, request: Request, device_id: str | None = None,
                after_id: int = Query(0, ge=0, le=2**63 - 1, description="page on: the last id of the previous page"),
                limit: int = Query(results.DEFAULT_RESULTS_PAGE, ge=1, le=10_000)) -> list[ResultRecord]:
    """Stored results of the job, oldest first (page with ``after_id``)."""
    with appstate.sessions(request).begin() as session:
        rows = results.list_results(session, name, device_id, after_id=after_id, limit=limit)
        if not rows and after_id == 0:
            jobs_registry.get(session, name)  # 404 for a job that never existed
    return rows


@device_router.post("/{device_id}/results", response_model=ResultsAck,
                    responses={401: {"description": "Bad device token"}, 404: {"description": "Unknown device"},
                               413: {"description": "Batch over the size limit"},
                               422: {"description": "Bad batch (the detail names the field); nothing stored"}})
async def upload_results(device_id: str, request: Request,
                         token: Annotated[str | None, Depends(device_caller)] = None,
                         content_encoding: str | None = Header(default=None)) -> ResultsAck | JSONResponse:
    """A batch of results and sketches (JSON of ResultsBatch, gzip or plain); each key is stored once."""
    ingest: HeartbeatIngest = request.app.state.ingest
    auth = ingest.cached_auth(device_id)
    if auth is None:
        auth = await run_in_threadpool(ingest.load_auth, device_id)
    ingest.check_token(device_id, auth, token)
    body = await _bounded_body(request)
    try:
        return await run_in_threadpool(_ingest, request, device_id, body, content_encoding)
    except results.BadBatch as exc:
        return JSONResponse({"detail": exc.errors}, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY)


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > results.MAX_BODY_BYTES:
        raise results.BodyTooLarge(f"body: {declared} bytes is over the {results.MAX_BODY_BYTES} byte limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > results.MAX_BODY_BYTES:
            raise results.BodyTooLarge(f"body: over the {results.MAX_BODY_BYTES} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest(request: Request, device_id: str, body: bytes, content_encoding: str | None) -> ResultsAck:
    batch, sketches = results.parse_batch(results.decode_body(body, content_encoding), device_id)
    with appstate.sessions(request).begin() as session:
        ack = results.store(session, device_id, batch, sketches, appstate.now())
    request.app.state.counters.results(ack)
    return ack

"""``jetfleet bench rollout``: a staged rollout over simulated devices against a real control plane.

Each simulated device heartbeats in turn (aiohttp, ``concurrency`` in flight) and reports the model version it
serves; when an answer asks for another version, the device "swaps" at once (its next heartbeat reports it
committed). Measured: the control plane's CPU per heartbeat over a window without a rollout and over the
rollout (which runs until completed), and per wave the time from the last commit of the wave before (the
heartbeat that reported it) to the first answer that tells a device of the next wave to update.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetfleet.bench.backend import LocalBackend, _register, local_backend

MODEL = "bench-rollout"


@dataclass
class Fleet:
    creds: list[tuple[str, str]]
    serving: dict[str, int] = field(default_factory=dict)
    committed_at: dict[str, float] = field(default_factory=dict)  # first heartbeat reporting the new version
    told_at: dict[str, float] = field(default_factory=dict)  # first answer asking for the new version
    heartbeats: int = 0
    errors: int = 0


async def _beat(session: Any, url: str, fleet: Fleet, device_id: str, token: str, new: int) -> None:
    version = fleet.serving.get(device_id)
    models = [] if version is None else [{"name": MODEL, "serving_version": version, "target_version": version,
                                          "state": "committed"}]
    sent = time.perf_counter()
    async with session.post(f"{url}/api/v1/edge-devices/{device_id}/heartbeat", json={"models": models},
                            headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status != 200:
            fleet.errors += 1
            return
        answer = await response.json()
    fleet.heartbeats += 1
    if version == new:
        fleet.committed_at.setdefault(device_id, sent)
    wanted = next((item["version"] for item in answer["ota"] if item["model"] == MODEL), None)
    if wanted is not None:
        if wanted == new:
            fleet.told_at.setdefault(device_id, time.perf_counter())
        fleet.serving[device_id] = wanted


async def _load(url: str, fleet: Fleet, concurrency: int, new: int, until: Any) -> None:
    import aiohttp

    async def worker(session: aiohttp.ClientSession, start: int) -> None:
        index = start
        while not await until():
            device_id, token = fleet.creds[index % len(fleet.creds)]
            index += concurrency
            await _beat(session, url, fleet, device_id, token, new)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))


def _window(url: str, server: LocalBackend, fleet: Fleet, concurrency: int, new: int,
            until: Any) -> tuple[float, int, float]:
    """(server CPU ms per heartbeat, heartbeats, seconds) while ``until`` says go on."""
    cpu, beats, began = server.cpu_seconds(), fleet.heartbeats, time.perf_counter()
    asyncio.run(_load(url, fleet, concurrency, new, until))
    count = fleet.heartbeats - beats
    return (server.cpu_seconds() - cpu) / max(count, 1) * 1000, count, time.perf_counter() - began


def run_rollout_bench(*, devices: int, waves: str, concurrency: int, idle_seconds: float,
                      rollout_interval: float, timeout: float) -> dict[str, Any]:
    from jetfleet.backend.admin_client import AdminClient

    with local_backend(extra_args=("--rollout-interval", str(rollout_interval))) as (url, server), \
            AdminClient(url, server.admin_token) as admin:
        creds = [tuple(c.split("\n")[1:]) for c in asyncio.run(_register(url, devices, min(concurrency, 64)))]
        fleet = Fleet(creds=creds)  # type: ignore[arg-type]
        _push_two_versions(admin)
        admin.deploy(MODEL, "prod", [], all_devices=True)

        deadline = time.monotonic() + idle_seconds

        async def idle_over() -> bool:
            return time.monotonic() > deadline and len(fleet.serving) == devices

        idle_cpu, idle_beats, idle_s = _window(url, server, fleet, concurrency, 2, idle_over)
        rollout = admin.start_rollout({"model": MODEL, "tag": "prod", "version": 2, "waves": waves})
        give_up = time.monotonic() + timeout
        state: dict[str, Any] = {"doc": rollout, "checked": 0.0}

        async def completed() -> bool:
            if time.monotonic() - state["checked"] > 0.5:
                state["checked"] = time.monotonic()
                state["doc"] = await asyncio.to_thread(admin.rollout, rollout["id"])
            return state["doc"]["state"] != "running" or time.monotonic() > give_up

        roll_cpu, roll_beats, roll_s = _window(url, server, fleet, concurrency, 2, completed)
    doc = state["doc"]
    return {"devices": devices, "waves": waves, "rollout_state": doc["state"], "concurrency": concurrency,
            "rollout_interval_s": rollout_interval,
            "idle": {"heartbeats": idle_beats, "seconds": round(idle_s, 2),
                     "heartbeats_per_s": round(idle_beats / idle_s, 1),
                     "server_cpu_ms_per_heartbeat": round(idle_cpu, 3)},
            "rollout": {"heartbeats": roll_beats, "seconds": round(roll_s, 2),
                        "heartbeats_per_s": round(roll_beats / roll_s, 1),
                        "server_cpu_ms_per_heartbeat": round(roll_cpu, 3)},
            "wave_sizes": [len(w["devices"]) for w in doc["waves"]],
            "last_commit_to_next_wave_s": _gaps(doc, fleet), "errors": fleet.errors}


def _gaps(doc: dict[str, Any], fleet: Fleet) -> list[float | None]:
    gaps: list[float | None] = []
    for before, after in zip(doc["waves"], doc["waves"][1:], strict=False):
        commits = [fleet.committed_at.get(d) for d in before["devices"]]
        told = [fleet.told_at[d] for d in after["devices"] if d in fleet.told_at]
        if None in commits or not told:
            gaps.append(None)
            continue
        gaps.append(round(min(told) - max(c for c in commits if c is not None), 3))
    return gaps


def _push_two_versions(admin: Any) -> None:
    from jetfleet.backend.model_schemas import CreateVersion
    from jetfleet.bench.testmodels import write_dense_onnx

    with tempfile.TemporaryDirectory(prefix="jetfleet-bench-rollout-") as tmp:
        for seed in (1, 2):
            path = write_dense_onnx(Path(tmp) / f"v{seed}.onnx", features=4, outputs=3, seed=seed, scale=1.0)
            upload = admin.upload(path)
            admin.create_version(MODEL, CreateVersion(artifact_upload=upload.upload_id, filename=path.name,
                                                      tag="prod" if seed == 1 else None))



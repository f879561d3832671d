"""The ``process`` executor: each model version is a local ``jetfleet serve-model`` subprocess.

Instances are recorded in ``state_dir/ota/processes/NAME-VERSION.json`` (pid, its start time, port), so
an agent restarted after a crash or kill -9 finds and adopts the servers still running. They are
children of the agent: when the agent stops cleanly it stops them.

The record is written twice: before the server is forked (its command line, no pid yet) and after. An
agent killed between the two leaves a record without a pid; the next agent looks the server up by its
command line and adopts it, or drops the record when the fork never happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from jetfleet.agent.ota.observed import Instance
from jetfleet.agent.ota.runtime.base import LaunchSpec, model_server_args
from jetfleet.files import write_atomic

log = logging.getLogger("jetfleet.agent.ota")
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_BYTES = 4000


class ProcessRuntime:
    kind = "process"

    def __init__(self, state_dir: Path) -> None:
        self.records = state_dir / "processes"
        self.logs_dir = state_dir / "logs"
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._starting: set[str] = set()  # records this agent is forking a server for right now

    def _record(self, name: str, version: int) -> Path:
        return self.records / f"{name}-{version}.json"

    async def instances(self) -> list[Instance]:
        return await asyncio.to_thread(self._instances)

    def _instances(self) -> list[Instance]:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]  # reaped
        found = []
        for path in sorted(self.records.glob("*.json")) if self.records.is_dir() else []:
            if path.name in self._starting:
                continue
            try:
                data = json.loads(path.read_text())
                if "pid" not in data and not self._adopt_unrecorded(path, data):
                    continue
                found.append(Instance(data["name"], int(data["version"]), int(data["port"]),
                                      _alive(int(data["pid"]), float(data["started"])), str(data["pid"])))
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
        return found

    def _adopt_unrecorded(self, path: Path, data: dict[str, object]) -> bool:
        """A record written just before a fork by an agent that died: find its server (``data`` gets the pid)."""
        argv = data["argv"]
        process = next((p for p in psutil.process_iter(["cmdline", "create_time"]) if p.info["cmdline"] == argv),
                       None)
        if process is None:
            path.unlink(missing_ok=True)  # the agent died before the fork
            return False
        data.update(pid=process.pid, started=process.info["create_time"])
        write_atomic(path, json.dumps(data), mode=0o644)
        log.info("found model server %s version %s (pid %d) started by an agent that died before recording it",
                 data["name"], data["version"], process.pid)
        return True

    async def start(self, spec: LaunchSpec) -> Instance:
        return await asyncio.to_thread(self._start, spec)

    def _start(self, spec: LaunchSpec) -> Instance:
        existing = next((i for i in self._instances() if (i.name, i.version) == (spec.name, spec.version)), None)
        if existing is not None and existing.running:
            return existing
        self.records.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "jetfleet", "serve-model", *model_server_args(spec, str(spec.model_dir))]
        path = self._record(spec.name, spec.version)
        record: dict[str, object] = {"name": spec.name, "version": spec.version, "port": spec.port, "argv": argv}
        self._starting.add(path.name)
        try:
            write_atomic(path, json.dumps(record), mode=0o644)
            with open(self._log(spec.name, spec.version), "ab") as log_file:
                child = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self._children[child.pid] = child
            record.update(pid=child.pid, started=psutil.Process(child.pid).create_time())
            write_atomic(path, json.dumps(record), mode=0o644)
        finally:
            self._starting.discard(path.name)
        log.info("started model server %s version %s (pid %d, port %d)", spec.name, spec.version, child.pid,
                 spec.port)
        return Instance(spec.name, spec.version, spec.port, True, str(child.pid))

    async def alive(self, instance: Instance) -> bool:
        child = self._children.get(int(instance.ident))
        if child is not None:
            return child.poll() is None
        current = {i.ident: i.running for i in await self.instances()}
        return current.get(instance.ident, False)

    async def stop(self, instance: Instance) -> None:
        pid = int(instance.ident)
        record = self._record(instance.name, instance.version)
        if await asyncio.to_thread(self._owned, instance):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not await self._wait_gone(pid, STOP_TIMEOUT_SECONDS):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                await self._wait_gone(pid, 5.0)
            log.info("stopped model server %s version %s (pid %d)", instance.name, instance.version, pid)
        record.unlink(missing_ok=True)

    def _owned(self, instance: Instance) -> bool:
        """The record's pid is still the server we started (pids are reused)."""
        try:
            data = json.loads(self._record(instance.name, instance.version).read_text())
        except (OSError, ValueError):
            return False
        return str(data.get("pid")) == instance.ident and _alive(int(data["pid"]), float(data["started"]))

    async def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            child = self._children.get(pid)
            if child is not None and child.poll() is not None:
                self._children.pop(pid, None)
                return True
            if child is None and not _running(pid):
                return True
            await asyncio.sleep(0.05)
        return False

    async def logs(self, instance: Instance) -> str:
        path = self._log(instance.name, instance.version)
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def _log(self, name: str, version: int) -> Path:
        return self.logs_dir / f"{name}-{version}.log"

    async def close(self) -> None:
        running = [i for i in await self.instances() if i.running]
        await asyncio.gather(*(self.stop(i) for i in running), return_exceptions=True)


def _alive(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - started) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _running(pid: int) -> bool:
    """Not gone and not a zombie (a server whose parent has not reaped it yet is gone too)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

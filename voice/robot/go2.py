"""``--robot go2``: Unitree Go2 over the SDK's SportClient (CycloneDDS), driven by one worker thread.

* One action at a time. A new command cancels a running motion; ``stop``/``emergency_stop`` jump ahead
  of everything pending; a pending non-safety command is superseded by a newer one.
* Motions re-send Move at 10-20 Hz for a bounded time, then StopMove: if this process dies the robot
  stops by itself within about 1 s (it holds a Move for 1 s only).
* SDK calls never run on the event loop or the audio path; every return code is reported.
* A blocking RPC cannot be interrupted: a stop waits for the call in flight (at most about 2x the
  timeout). The handheld remote stays the primary emergency stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from jetfleet.voice.grammar import STOP_FAMILY, Action
from jetfleet.voice.robot import codes
from jetfleet.voice.robot.base import RobotDriver, RobotResult
from jetfleet.voice.robot.dds import import_sdk, start_dds
from jetfleet.voice.robot.sport_calls import Motion, Posture, SdkCall, plan_action
from jetfleet.voice.settings import RobotSettings

_LOG = logging.getLogger(__name__)

CallObserver = Callable[[str, int, float], None]  # (method, code, seconds)


@dataclass
class _Job:
    action: Action
    future: Future[RobotResult] = field(default_factory=Future)


class Go2Driver(RobotDriver):
    name = "go2"

    def __init__(self, settings: RobotSettings, on_call: CallObserver | None = None) -> None:
        self._settings = settings
        self._on_call = on_call
        self._cond = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._cancel = threading.Event()
        self._closing = False
        self._connected = False
        self._posture: Posture = "unknown"
        self._client: Any = None
        self._thread = threading.Thread(target=self._run, name="go2-worker", daemon=True)

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        sdk = import_sdk()
        start_dds(sdk, self._settings)
        client = sdk.SportClient()
        client.SetTimeout(self._settings.timeout_s)
        client.Init()  # registers the APIs; sleeps about 0.7 s inside the SDK
        self._client = client
        self._thread.start()

    def submit(self, action: Action) -> Future[RobotResult]:
        job = _Job(action)
        with self._cond:
            if self._closing:
                job.future.set_result(RobotResult(False, None, "the robot driver is shutting down"))
                return job.future
            self._enqueue(job)
            self._cancel.set()
            self._cond.notify()
        return job.future

    def _enqueue(self, job: _Job) -> None:
        safety = [j for j in self._pending if j.action in STOP_FAMILY]
        for old in self._pending:
            if old.action not in STOP_FAMILY:
                old.future.set_result(RobotResult(False, None, f"superseded by '{job.action.value}' before it ran"))
        if job.action is Action.EMERGENCY_STOP:
            safety.insert(0, job)
        else:
            safety.append(job)
        self._pending = deque(safety)

    def close(self) -> None:
        with self._cond:
            self._closing = True
            for job in self._pending:
                job.future.set_result(RobotResult(False, None, "the robot driver is shutting down"))
            self._pending.clear()
            self._cancel.set()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self._settings.timeout_s + 2)

    # -- worker thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        self._probe()
        while True:
            job = self._next_job()
            if job is None:
                if self._closing:
                    if self._connected:
                        self._invoke(SdkCall("StopMove"))  # leave the robot standing still
                    return
                self._probe()
                continue
            try:
                self._execute(job)
            except Exception as exc:  # an SDK failure must not kill the worker
                _LOG.exception("robot action %s failed", job.action.value)
                if not job.future.done():
                    job.future.set_result(RobotResult(False, None, f"robot driver error: {exc}"))

    def _next_job(self) -> _Job | None:
        with self._cond:
            if not self._pending and not self._closing:
                self._cond.wait(self._settings.probe_interval_s)
            if self._closing or not self._pending:
                return None
            self._cancel.clear()
            return self._pending.popleft()

    def _invoke(self, call: SdkCall) -> int:
        started = time.monotonic()
        result = getattr(self._client, call.method)(*call.args)
        code = int(result[0] if isinstance(result, tuple) else result)
        self._connected = code not in codes.NO_ANSWER
        if self._on_call is not None:
            self._on_call(call.method, code, time.monotonic() - started)
        return code

    def _probe(self) -> None:
        self._invoke(SdkCall("GetServerApiVersion"))

    def _execute(self, job: _Job) -> None:
        plan = plan_action(job.action, posture=self._posture, limits=self._settings)
        code = codes.OK
        for call in plan.calls:
            code = self._invoke(call)
            if code != codes.OK:
                break
        if code == codes.OK and plan.posture_after is not None:
            self._posture = plan.posture_after
        if plan.motion is not None:
            self._move(plan.motion, job)
            return
        job.future.set_result(_result(code, str(plan)))

    def _move(self, motion: Motion, job: _Job) -> None:
        deadline = time.monotonic() + motion.duration_s
        period = 1.0 / motion.rate_hz
        first = True
        while True:
            code = self._invoke(motion.call)
            if first:
                job.future.set_result(_result(code, str(motion)))
                first = False
            if code != codes.OK:
                return  # nothing is listening: StopMove would fail the same way
            if self._cancel.wait(period) or time.monotonic() >= deadline:
                break
        with self._cond:
            emergency_next = bool(self._pending) and self._pending[0].action is Action.EMERGENCY_STOP
        if not emergency_next:  # Damp comes first when an emergency stop is waiting
            self._invoke(SdkCall("StopMove"))


def _result(code: int, what: str) -> RobotResult:
    if code == codes.OK:
        return RobotResult(True, code, f"sent {what}")
    return RobotResult(False, code, f"{what}: {codes.describe(code)}")

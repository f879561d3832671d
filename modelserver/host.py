"""The served model: loaded once on its own thread, which then runs every inference.

One thread owns the model because CUDA contexts and TensorRT execution contexts are per thread, and
because serialized inference bounds memory on a shared-memory Jetson. The event loop only awaits.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from jetfleet.modelfiles.errors import InferenceRequestError, ModelLoadError
from jetfleet.modelfiles.layout import ModelMetadata, engine_cache_dir, read_metadata, verified_artifact
from jetfleet.modelserver.engine_cache import Precision
from jetfleet.modelserver.kserve import NDArray
from jetfleet.modelserver.loaders import LoadedModel, LoadOptions, load_model
from jetfleet.modelserver.selection import (
    RuntimeFacts,
    RuntimeRequest,
    choose_runtime,
    cpu_fallback_warning,
    probe_runtime_facts,
)
from jetfleet.modelserver.warmup import example_inputs

log = logging.getLogger(__name__)
T = TypeVar("T")
State = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class ServeSettings:
    """Everything ``jetfleet serve-model`` was told, validated at the CLI edge."""

    model_dir: Path
    name: str
    version: str
    port: int
    host: str = "127.0.0.1"
    runtime: RuntimeRequest = "auto"
    precision: Precision = "fp16"
    engine_cache_dir: Path | None = None  # default: <model_dir>/engines
    max_batch: int = 8


class ModelThread:
    """A daemon thread running submitted calls one at a time (daemon: a long TensorRT build never blocks exit)."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue())
        threading.Thread(target=self._loop, name="model", daemon=True).start()

    def stop(self) -> None:
        """End the thread after the calls already submitted."""
        self._calls.put(None)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        future: Future[T] = Future()
        self._calls.put((future, function, args))
        return await asyncio.wrap_future(future)

    def _loop(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)


class ModelHost:
    """Loads the model in ``settings.model_dir`` and serves inference on it."""

    def __init__(self, settings: ServeSettings, probe: Callable[[], RuntimeFacts] = probe_runtime_facts) -> None:
        self.settings = settings
        self.name, self.version = settings.name, settings.version
        self.state: State = "loading"
        self.error: str | None = None
        self.metadata: ModelMetadata | None = None
        self.model: LoadedModel | None = None
        self.load_seconds: float | None = None
        self._probe = probe
        self._thread = ModelThread()

    async def load(self) -> None:
        started = time.monotonic()
        try:
            metadata, model = await self._thread.run(self._load_and_warm_up)
        except Exception as exc:
            self.state, self.error = "failed", str(exc)
            raise
        self.metadata, self.model = metadata, model
        self.load_seconds = time.monotonic() - started
        self.state = "ready"
        log.info("model %s version %s ready (%s) in %.2f s", self.name, self.version, model.backend, self.load_seconds)

    def _load_and_warm_up(self) -> tuple[ModelMetadata, LoadedModel]:
        settings = self.settings
        metadata = read_metadata(settings.model_dir)
        if (metadata.name, metadata.version) != (settings.name, settings.version):
            raise ModelLoadError(f"{settings.model_dir}: model.json holds {metadata.name} version {metadata.version}, "
                                 f"but the server was asked to serve {settings.name} version {settings.version}")
        artifact = verified_artifact(settings.model_dir, metadata)
        facts = self._probe()
        runtime = choose_runtime(metadata.framework, metadata.artifact, facts, settings.runtime)
        log.info("loading %s with %s", artifact, runtime)
        options = LoadOptions(precision=settings.precision, max_batch=settings.max_batch,
                              engine_cache_dir=settings.engine_cache_dir or engine_cache_dir(settings.model_dir))
        model = load_model(artifact, metadata, runtime, options)
        warning = cpu_fallback_warning(runtime, model.backend, facts, settings.runtime)
        if warning:
            log.warning("%s", warning)
        model.infer(example_inputs(model.signature.inputs))  # warm-up: first-call allocations happen now
        return metadata, model

    def ready_model(self) -> LoadedModel:
        if self.model is None:
            detail = f"failed to load: {self.error}" if self.state == "failed" else "is still loading"
            raise InferenceRequestError(f"model '{self.name}' version {self.version} {detail}", status=503)
        return self.model

    def check_target(self, name: str, version: str | None) -> None:
        """404 unless the request addresses the served model (and version, when given)."""
        if name != self.name:
            raise InferenceRequestError(f"unknown model '{name}'; this server serves '{self.name}'", status=404)
        if version is not None and version != self.version:
            raise InferenceRequestError(f"model '{name}' has no version '{version}'; this server serves version "
                                        f"{self.version}", status=404)

    async def infer(self, inputs: dict[str, NDArray]) -> dict[str, NDArray]:
        return await self._thread.run(self.ready_model().infer, inputs)

    def close(self) -> None:
        self._thread.stop()

    def state_facts(self) -> tuple[bool, dict[str, str], float | None]:
        if self.model is None or self.metadata is None:
            return False, {}, None
        info = {"framework": self.metadata.framework, "platform": self.model.platform, "backend": self.model.backend}
        return self.state == "ready", info, self.load_seconds

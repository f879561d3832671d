"""Run the model server: HTTP up at once (live), the model loading beside it (ready when done).

A model that cannot be loaded ends the process with :data:`EXIT_LOAD_FAILED` after logging why, so
a supervisor (the agent, Docker) sees the failure instead of a server that never becomes ready.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from jetfleet.errors import JetfleetError
from jetfleet.modelserver.host import ModelHost, ServeSettings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)
EXIT_LOAD_FAILED = 3


def run_server(settings: ServeSettings, log_level: str = "info") -> int:
    return asyncio.run(_serve(settings, log_level))


async def _serve(settings: ServeSettings, log_level: str) -> int:
    import uvicorn
    from prometheus_client import CollectorRegistry

    from jetfleet.modelserver.app import create_app
    from jetfleet.modelserver.metrics import InferenceMetrics, ModelStateCollector

    host = ModelHost(settings)
    registry = CollectorRegistry()
    metrics = InferenceMetrics(registry, settings.name, settings.version)
    registry.register(ModelStateCollector(host))
    config = uvicorn.Config(create_app(host, metrics, registry), host=settings.host, port=settings.port,
                            log_config=None, log_level=log_level, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    loading = asyncio.create_task(_load(host, server))
    await server.serve()
    loading.cancel()
    host.close()
    return EXIT_LOAD_FAILED if host.state == "failed" else 0


async def _load(host: ModelHost, server: uvicorn.Server) -> None:
    try:
        await host.load()
        return
    except JetfleetError as exc:  # a known reason: one clear line
        log.error("cannot serve model %s version %s: %s", host.name, host.version, exc)
    except Exception:
        log.exception("cannot serve model %s version %s", host.name, host.version)
    server.should_exit = True

"""``jetfleet voice serve``: check everything cheap first, then run the server until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn

from jetfleet.errors import JetfleetError, PermanentError
from jetfleet.voice.http_api import create_app
from jetfleet.voice.metrics import VoiceMetrics
from jetfleet.voice.pipeline import VoiceService
from jetfleet.voice.robot.dds import preflight
from jetfleet.voice.robot.factory import build_driver
from jetfleet.voice.settings import VoiceSettings
from jetfleet.voice.stt.loader import plan_stt

_LOG = logging.getLogger(__name__)


def run_server(settings: VoiceSettings) -> None:
    """Blocks until the server stops. Start-up problems raise a JetfleetError naming the flag."""
    for warning in preflight(settings.robot):
        _LOG.warning("%s", warning)
    plan = plan_stt(settings.stt)  # joins and verifies the packaged model: seconds, once
    _LOG.info("speech-to-text: %s '%s' on %s/%s from %s", plan.backend, plan.model_name, plan.device,
              plan.compute_type, plan.source)
    metrics = VoiceMetrics()
    service = VoiceService(settings, plan, build_driver(settings.robot, metrics), metrics)
    failures: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        failures.append(exc)
        server.should_exit = True

    app = create_app(service, on_fatal=on_fatal)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                                           access_log=False, timeout_graceful_shutdown=5))
    server.run()
    if failures:
        failure = failures[0]
        if isinstance(failure, JetfleetError):
            raise failure
        raise PermanentError(f"the voice server could not start: {failure}") from failure

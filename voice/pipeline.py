"""The voice service core: audio or text in, a decided command and the robot's answer out.

Library-shaped: the HTTP layer only adapts. The model is loaded once and shared; decoding, inference and
robot calls run off the event loop; admission to the model is bounded (:mod:`jetfleet.voice.gate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

from jetfleet.updatelock import hold as update_lock
from jetfleet.voice.audio import AudioLimits, DecodedAudio, decode_audio
from jetfleet.voice.errors import AudioError, NotReady
from jetfleet.voice.gate import AdmissionGate
from jetfleet.voice.grammar import (
    Action,
    Candidate,
    Match,
    confirm_by_scores,
    hotwords,
    match_command,
    verification_phrases,
)
from jetfleet.voice.metrics import LiveState, VoiceMetrics
from jetfleet.voice.robot.base import RobotDriver, RobotResult
from jetfleet.voice.settings import VoiceSettings
from jetfleet.voice.stats import ServiceStats
from jetfleet.voice.stt.base import DecodeOptions, Transcriber, Transcript
from jetfleet.voice.stt.loader import SttPlan, load_transcriber

_LOG = logging.getLogger(__name__)

Status = Literal["ok", "rejected", "error"]


@dataclass(frozen=True)
class ListenResult:
    status: Status
    transcript: str
    command: Candidate | None
    candidates: tuple[Candidate, ...]
    robot: RobotResult
    stt_ms: float | None
    total_ms: float
    reason: str


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 1)


class VoiceService:
    def __init__(self, settings: VoiceSettings, plan: SttPlan, driver: RobotDriver, metrics: VoiceMetrics,
                 loader: Callable[[SttPlan], Transcriber] = load_transcriber) -> None:
        self.settings = settings
        self.plan = plan
        self.driver = driver
        self.metrics = metrics
        self.stats = ServiceStats()
        self.gate = AdmissionGate(settings.stt.workers, settings.limits.max_queue)
        self.transcriber: Transcriber | None = None
        self.robot_ready = False
        self.failure: str | None = None
        self._loader = loader
        self._executor = ThreadPoolExecutor(max_workers=settings.stt.workers, thread_name_prefix="stt")
        self._limits = AudioLimits(max_seconds=settings.limits.max_audio_seconds)
        metrics.watch(self.live_state)

    # -- life cycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the robot, load the model once and warm it up (the first inference is slower)."""
        await asyncio.to_thread(self.driver.start)
        self.robot_ready = True
        loop = asyncio.get_running_loop()
        transcriber = await loop.run_in_executor(self._executor, self._loader, self.plan)
        warmup = np.zeros(16_000, dtype=np.float32)
        await loop.run_in_executor(self._executor, transcriber.transcribe, warmup,
                                   DecodeOptions(language=self.settings.stt.language, beam_size=1))
        self.transcriber = transcriber
        _LOG.info("ready: %s %s on %s (%s)", self.plan.backend, self.plan.model_name, transcriber.device,
                  self.plan.source)

    async def close(self) -> None:
        await asyncio.to_thread(self.driver.close)
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.transcriber is not None and self.robot_ready

    def live_state(self) -> LiveState:
        return LiveState(
            in_flight=self.gate.in_flight, queued=self.gate.waiting, queue_capacity=self.gate.capacity,
            model_loaded=self.transcriber is not None, robot_connected=self.driver.connected,
            info={"model": self.plan.model_name, "backend": self.plan.backend,
                  "device": self.plan.device, "language": self.settings.stt.language, "robot": self.driver.name})

    # -- commands -----------------------------------------------------------------------------------

    async def listen_text(self, text: str) -> ListenResult:
        started = time.monotonic()
        if not self.robot_ready:
            raise NotReady("the robot driver is still connecting", delay=2.0)
        match = match_command(text, threshold=self.settings.grammar.threshold, margin=self.settings.grammar.margin)
        return await self._act(text, match, None, started)

    async def listen_audio(self, data: bytes, language: str | None) -> ListenResult:
        started = time.monotonic()
        audio, transcriber, language = await self._prepare(data, language)
        async with self.gate.slot():
            stt_started = time.monotonic()
            loop = asyncio.get_running_loop()
            transcript, match = await loop.run_in_executor(self._executor, self._understand, transcriber,
                                                           audio, language)
            self._observe_stt(stt_started, audio)
        return await self._act(transcript.text, match, _ms(stt_started), started)

    async def transcribe(self, data: bytes, language: str | None, prompt: str | None,
                         temperature: float) -> Transcript:
        """Plain transcription for the OpenAI-compatible endpoint (no vocabulary bias, no robot)."""
        audio, transcriber, language = await self._prepare(data, language)
        options = DecodeOptions(language=language, initial_prompt=prompt or None, temperature=temperature)
        async with self.gate.slot():
            stt_started = time.monotonic()
            loop = asyncio.get_running_loop()
            try:
                transcript = await loop.run_in_executor(self._executor, transcriber.transcribe, audio.samples,
                                                        options)
            except ValueError as exc:  # e.g. a language code Whisper does not know
                raise AudioError(f"the model cannot transcribe this request: {exc}") from exc
            self._observe_stt(stt_started, audio)
        return transcript

    async def _prepare(self, data: bytes, language: str | None) -> tuple[DecodedAudio, Transcriber, str]:
        transcriber = self.transcriber
        if transcriber is None or not self.robot_ready:
            raise NotReady("the speech model is still loading", delay=2.0)
        language = language or self.settings.stt.language
        supported = transcriber.languages()
        if supported is not None and language not in supported:
            raise AudioError(f"the {transcriber.backend} model '{transcriber.model_name}' transcribes"
                             f" {', '.join(sorted(supported))} only, not '{language}'")
        audio = await asyncio.to_thread(decode_audio, data, self._limits)
        return audio, transcriber, language

    def _observe_stt(self, started: float, audio: DecodedAudio) -> None:
        seconds = time.monotonic() - started
        self.gate.typical_job_s = 0.8 * self.gate.typical_job_s + 0.2 * seconds
        self.metrics.stt_seconds.observe(seconds)
        self.metrics.audio_seconds.inc(audio.duration_s)

    def _understand(self, transcriber: Transcriber, audio: DecodedAudio, language: str) -> tuple[Transcript, Match]:
        """Runs in the STT thread: biased decoding, grammar, then the stop look-alike check."""
        stt, grammar = self.settings.stt, self.settings.grammar
        transcript = transcriber.transcribe(audio.samples, DecodeOptions(language=language,
                                                                         hotwords=hotwords(language)))
        if transcript.is_no_speech(no_speech_prob=stt.no_speech_prob, logprob=stt.no_speech_logprob):
            return transcript, Match(None, (), "no speech recognised in the audio")
        match = match_command(transcript.text, threshold=grammar.threshold, margin=grammar.margin)
        if match.command is None:
            return transcript, match
        phrases = verification_phrases(match.command.action, language)
        if not phrases:
            return transcript, match
        scores = transcriber.score_phrases(audio.samples, language, {a.value: p for a, p in phrases.items()})
        if scores:
            match = confirm_by_scores(match, {Action(k): v for k, v in scores.items()},
                                      margin=grammar.safety_margin_nats)
        return transcript, match

    async def _act(self, transcript: str, match: Match, stt_ms: float | None, started: float) -> ListenResult:
        command = match.command
        if command is None:
            robot = RobotResult(False, None, f"not executed: {match.reason}")
            status: Status = "rejected"
        else:
            robot = await self._run_robot(command.action)
            status = "ok" if robot.executed or self.driver.name == "none" else "error"
        result = ListenResult(status, transcript, command, match.candidates, robot, stt_ms, _ms(started),
                              match.reason)
        self._record(result)
        return result

    async def _run_robot(self, action: Action) -> RobotResult:
        """Run the command while holding the device's update lock (when configured): no model swap mid-motion."""
        lock = self.settings.robot.update_lock
        if lock is None:
            return await self._submit(action)
        with contextlib.ExitStack() as held:
            await asyncio.to_thread(held.enter_context, update_lock(lock))
            return await self._submit(action)

    async def _submit(self, action: Action) -> RobotResult:
        wait_s = self.settings.limits.robot_wait_s
        try:
            return await asyncio.wait_for(asyncio.wrap_future(self.driver.submit(action)), wait_s)
        except asyncio.TimeoutError:
            return RobotResult(False, None, f"the robot driver did not answer within {wait_s:g} s;"
                                            " the command may still run")

    def _record(self, result: ListenResult) -> None:
        action = result.command.action.value if result.command else "none"
        self.metrics.commands.labels(action, result.status).inc()
        summary = {"status": result.status, "transcript": result.transcript, "action": action if result.command
                   else None, "confidence": result.command.confidence if result.command else None,
                   "robot_code": result.robot.code, "robot_message": result.robot.message}
        self.stats.record(summary, result.total_ms)
        _LOG.info("%s: '%s' -> %s (%s); robot: %s", result.status, result.transcript, action, result.reason,
                  result.robot.message)

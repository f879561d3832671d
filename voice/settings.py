"""Frozen settings of the voice server, built once from the command line and passed down.

Validation happens here, so a wrong flag fails at start with a message naming the flag.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jetfleet.errors import ConfigError
from jetfleet.voice.grammar import LANGUAGES

BackendChoice = Literal["auto", "whisper-trt", "faster-whisper"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
RobotKind = Literal["go2", "none"]

BACKENDS: tuple[BackendChoice, ...] = ("auto", "whisper-trt", "faster-whisper")
DEVICES: tuple[DeviceChoice, ...] = ("auto", "cpu", "cuda")
ROBOTS: tuple[RobotKind, ...] = ("go2", "none")


def language_pattern(codes: tuple[str, ...] | list[str]) -> str:
    """A JSON Schema pattern of the tags ``whisper_language`` accepts for ``codes`` (any case, a region is fine)."""
    def anycase(code: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" for c in code)

    return rf"^\s*({'|'.join(anycase(code) for code in codes)})([-_][A-Za-z0-9]{{1,8}})*\s*$"


def whisper_language(tag: str, *, flag: str = "--language") -> str:
    """'nl-NL' / 'NL' / 'en_US' -> the Whisper code 'nl' / 'en'; only the grammar's languages are allowed."""
    code = tag.strip().replace("_", "-").split("-")[0].lower()
    if code not in LANGUAGES:
        raise ConfigError(f"'{tag}' is not supported; the command grammar knows {', '.join(LANGUAGES)}"
                          " (e.g. nl-NL, en-US)", key=flag)
    return code


def _require(condition: bool, flag: str, message: str) -> None:
    if not condition:
        raise ConfigError(message, key=flag)


@dataclass(frozen=True)
class SttSettings:
    whisper_model: str = "base"
    model_dir: Path | None = None
    backend: BackendChoice = "auto"
    device: DeviceChoice = "auto"
    language: str = "nl"
    cache_dir: Path = Path.home() / ".cache" / "jetfleet" / "voice"
    cpu_threads: int = 0
    workers: int = 1
    # Whisper's own no-speech rule: both must hold for a segment to count as silence.
    no_speech_prob: float = 0.6
    no_speech_logprob: float = -1.0

    def __post_init__(self) -> None:
        _require(self.backend in BACKENDS, "--backend", f"must be one of {', '.join(BACKENDS)}")
        _require(self.device in DEVICES, "--device", f"must be one of {', '.join(DEVICES)}")
        _require(self.language in LANGUAGES, "--language", f"must be one of {', '.join(LANGUAGES)}")
        _require(bool(self.whisper_model.strip()), "--whisper-model", "must not be empty")
        _require(self.cpu_threads >= 0, "--cpu-threads", "must be >= 0 (0: one per core)")
        _require(1 <= self.workers <= 8, "--workers", "must be between 1 and 8")


@dataclass(frozen=True)
class RobotSettings:
    kind: RobotKind = "go2"
    robot_ip: str = "192.168.123.161"
    network_interface: str = "eth0"
    dds_domain: int = 0
    timeout_s: float = 5.0
    motion_seconds: float = 2.0
    move_rate_hz: float = 10.0
    # Well inside Unitree's documented ranges (vx -2.5..3.8 m/s, vy -1..1 m/s, vyaw -4..4 rad/s).
    walk_speed: float = 0.3
    turn_speed: float = 0.6
    max_speed: float = 0.6
    max_turn_speed: float = 1.0
    probe_interval_s: float = 10.0
    allow_dds_mismatch: bool = False
    update_lock: Path | None = None  # held (flock) while a command runs: the agent swaps no model meanwhile

    def __post_init__(self) -> None:
        _require(self.kind in ROBOTS, "--robot", f"must be one of {', '.join(ROBOTS)}")
        try:
            ipaddress.IPv4Address(self.robot_ip)
        except ValueError as exc:
            raise ConfigError(f"'{self.robot_ip}' is not an IPv4 address", key="--robot-ip") from exc
        _require(bool(self.network_interface), "--network-interface", "must name a network interface")
        _require(0 <= self.dds_domain <= 232, "--dds-domain", "must be a DDS domain id 0..232")
        _require(0.1 <= self.timeout_s <= 60, "--robot-timeout", "must be between 0.1 and 60 seconds")
        _require(0.1 <= self.motion_seconds <= 10, "--motion-seconds", "must be between 0.1 and 10 seconds")
        _require(10 <= self.move_rate_hz <= 20, "--move-rate", "must be between 10 and 20 Hz")
        _require(0 < self.walk_speed <= self.max_speed <= 1.0, "--walk-speed",
                 "must be > 0 and <= the 0.6 m/s cap (max 1.0 m/s)")
        _require(0 < self.turn_speed <= self.max_turn_speed <= 2.0, "--turn-speed",
                 "must be > 0 and <= the 1.0 rad/s cap (max 2.0 rad/s)")


@dataclass(frozen=True)
class LimitSettings:
    max_queue: int = 16
    max_audio_seconds: float = 30.0
    max_upload_bytes: int = 10 * 1024 * 1024
    robot_wait_s: float = 15.0

    def __post_init__(self) -> None:
        _require(0 <= self.max_queue <= 1000, "--max-queue", "must be between 0 and 1000")
        _require(0.5 <= self.max_audio_seconds <= 600, "--max-audio-seconds", "must be between 0.5 and 600")
        _require(1024 <= self.max_upload_bytes <= 512 * 1024 * 1024, "--max-upload-bytes",
                 "must be between 1 KiB and 512 MiB")


@dataclass(frozen=True)
class GrammarSettings:
    threshold: float = 0.70
    margin: float = 0.10
    # How many nats the audio must favour "sta op" over "stop" before "stand_up" is allowed.
    safety_margin_nats: float = 0.0

    def __post_init__(self) -> None:
        _require(0.3 <= self.threshold <= 1.0, "--match-threshold", "must be between 0.3 and 1.0")
        _require(0.0 <= self.margin <= 0.5, "--match-margin", "must be between 0 and 0.5")
        _require(self.safety_margin_nats >= 0.0, "--safety-margin", "must be >= 0 nats")


@dataclass(frozen=True)
class VoiceSettings:
    node_name: str
    host: str = "0.0.0.0"
    port: int = 8888
    language_tag: str = "nl-NL"
    stt: SttSettings = field(default_factory=SttSettings)
    robot: RobotSettings = field(default_factory=RobotSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    grammar: GrammarSettings = field(default_factory=GrammarSettings)

    def __post_init__(self) -> None:
        _require(0 < self.port < 65536, "--port", "must be between 1 and 65535")
        _require(bool(self.node_name.strip()), "--node-name", "must not be empty")

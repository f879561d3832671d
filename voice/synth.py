"""Synthesize a spoken command with espeak-ng + SoX (slow speech, 0.4 s of silence each side, 16 kHz mono
16-bit): the recipe under which Whisper base recognises espeak's commands (docs/voice.md)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from jetfleet.errors import PermanentError

VOICES = {"nl": "nl", "en": "en-us"}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PermanentError(f"'{name}' is not installed; install it with: apt-get install {package}")
    return path


def synthesize(text: str, language: str, out: Path, *, speed: int = 130, pad_s: float = 0.4,
               voice: str | None = None) -> Path:
    """Write ``text`` spoken in ``language`` ('nl' or 'en') to the WAV file ``out``."""
    espeak, sox = _tool("espeak-ng", "espeak-ng"), _tool("sox", "sox")
    with tempfile.TemporaryDirectory(prefix="jetfleet-say-") as tmp:
        raw = Path(tmp) / "raw.wav"
        try:
            subprocess.run([espeak, "-v", voice or VOICES[language], "-s", str(speed), text, "-w", str(raw)],
                           check=True, capture_output=True, timeout=60)
            # -R: SoX dithers the resampled audio to 16 bits with random noise; a fixed seed makes the same
            # text give the same clip (and the same transcript) every time.
            subprocess.run([sox, "-R", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out),
                            "pad", f"{pad_s:g}", f"{pad_s:g}"], check=True, capture_output=True, timeout=60)
        except subprocess.CalledProcessError as exc:
            raise PermanentError(f"speech synthesis failed: {exc.stderr.decode(errors='replace')}") from exc
    return out

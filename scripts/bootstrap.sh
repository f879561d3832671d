#!/usr/bin/env bash
# Create ./.venv and install jetfleet with every extra the demo and the tests use.
# Works on a fresh Debian/Ubuntu machine with only python3 (root installs python3-venv if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${JETFLEET_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "==> installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
      "$PYTHON" -m venv "$VENV"
    else
      echo "error: '$PYTHON -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi

STAMP="$VENV/.jetfleet-installed"
HASHED=("$ROOT/pyproject.toml")
[ -f "$ROOT/constraints.txt" ] && HASHED+=("$ROOT/constraints.txt")
HASH="$(cat "${HASHED[@]}" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "==> installing jetfleet and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  CONSTRAINTS=()
  [ -f "$ROOT/constraints.txt" ] && CONSTRAINTS=(-c "$ROOT/constraints.txt")
  "$VENV/bin/python" -m pip install -q "${CONSTRAINTS[@]}" -e "${ROOT}[all]"
  # Go2 SDK for the fake-robot tests, without the opencv-python it never imports. cyclonedds 11.x from PyPI
  # is fine on loopback; a real Go2 needs cyclonedds 0.10.2 (docs/voice.md).
  "$VENV/bin/python" -m pip install -q "${CONSTRAINTS[@]}" "cyclonedds==11.0.1"
  "$VENV/bin/python" -m pip install -q --no-deps "unitree-sdk2py-dimos==1.0.3"
  echo "$HASH" > "$STAMP"
fi

#!/usr/bin/env bash
# The README's main job: a local fleet on loopback (embedded SQLite), shown working, stopped cleanly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
exec "${JETFLEET_VENV:-$ROOT/.venv}/bin/python" -m jetfleet.bench.demo "$@"

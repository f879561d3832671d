#!/usr/bin/env bash
# The test command (README, .ci/run): system packages when root, the venv, lint, type check, tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/system-deps.sh
bash scripts/bootstrap.sh
VENV="${JETFLEET_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
echo "==> ruff"
ruff check .
echo "==> mypy"
mypy
echo "==> layer contracts (import-linter)"
lint-imports
echo "==> pytest"
exec pytest "$@"

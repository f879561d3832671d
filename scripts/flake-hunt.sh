#!/usr/bin/env bash
# Run the integration tests again and again on a loaded machine and count the runs that pass.
#   bash scripts/flake-hunt.sh [RUNS] [TEST PATH ...]     (default: 3 runs of agent, OTA, gateway and voice tests)
# A CPU hog (one busy process pinned to core 0) runs for the whole hunt and is stopped by PID at the end.
# Each run's log is kept in .flake-hunt/run-N.log; a failing test there is a bug to fix, not to retry.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${1:-3}"
shift || true
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(tests/agent tests/ota tests/gateway tests/voice)
case "$RUNS" in ''|*[!0-9]*) echo "error: RUNS must be a whole number, got '$RUNS'" >&2; exit 2;; esac
if [ "$RUNS" -lt 1 ] || [ "$RUNS" -gt 50 ]; then echo "error: RUNS must be 1..50, got $RUNS" >&2; exit 2; fi
VENV="${JETFLEET_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH"
OUT="$ROOT/.flake-hunt"
mkdir -p "$OUT"

taskset -c 0 python3 -c 'import time
end = time.monotonic() + 6 * 3600
while time.monotonic() < end: pass' &
HOG=$!
trap 'kill "$HOG" 2>/dev/null || true' EXIT

passed=0
for run in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  if timeout 3600 pytest -q -p no:cacheprovider "${TESTS[@]}" >"$OUT/run-$run.log" 2>&1; then
    passed=$((passed + 1)); verdict=passed
  else
    verdict="FAILED (see $OUT/run-$run.log)"
  fi
  echo "run $run/$RUNS: $verdict in $(( $(date +%s) - start )) s: $(tail -n 1 "$OUT/run-$run.log")"
done
echo "$passed of $RUNS runs passed under a one-core CPU hog"
[ "$passed" -eq "$RUNS" ]

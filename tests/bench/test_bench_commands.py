"""`jetfleet bench ...` commands run end to end, small (their numbers go to docs/benchmarks.md, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from jetfleet.bench.faults import FAULTS, REPO
from tests.support.postgres import PostgresServer, create_database
from tests.support.processes import jetfleet_cmd, subprocess_env


def _bench(*args: str) -> dict[str, object]:
    done = subprocess.run(jetfleet_cmd("bench", *args, "--json"), capture_output=True, text=True, timeout=180,
                          env=subprocess_env())
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_bench_backend_registers_restarts_and_loads_the_control_plane() -> None:
    result = _bench("backend", "--devices", "20", "--duration", "1", "--concurrency", "4", "--restart")
    assert result["database"] == "sqlite" and result["errors"] == 0
    assert isinstance(result["heartbeats"], int) and result["heartbeats"] > 0
    assert isinstance(result["restart_to_healthy_s"], float) and isinstance(result["server_rss_mb"], float)


def test_bench_backend_refuses_restart_of_a_control_plane_it_did_not_start() -> None:
    done = subprocess.run(jetfleet_cmd("bench", "backend", "--backend-url", "http://127.0.0.1:9", "--restart"),
                          capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert done.returncode == 2 and "--restart" in done.stderr


def test_bench_agent_measures_a_running_agent() -> None:
    result = _bench("agent", "--interval", "1", "--duration", "5")
    assert isinstance(result["heartbeats"], int) and result["heartbeats"] >= 3
    assert isinstance(result["rss_max_mb"], float) and result["rss_max_mb"] > 10
    assert isinstance(result["heartbeat_request_bytes"], int) and 0 < result["heartbeat_request_bytes"] < 2048


def test_bench_ota_swaps_under_load_without_failures() -> None:
    result = _bench("ota", "--swaps", "1", "--threads", "1", "--big-mb", "0")
    assert result["swaps"] == 1 and result["failed_requests"] == 0, result
    assert isinstance(result["requests"], int) and result["requests"] > 0
    assert isinstance(result["tag_move_to_serving_s_max"], float) and result["tag_move_to_serving_s_max"] > 0


def test_bench_gateway_measures_the_traefik_overhead() -> None:
    result = _bench("gateway", "--sections", "overhead", "--duration", "1")
    ratio = result["trivial: throughput ratio"]
    assert isinstance(ratio, float) and ratio > 0, result
    assert "20 ms: added p50 / p99 (ms)" in result


def test_bench_gateway_refuses_an_unknown_section() -> None:
    done = subprocess.run(jetfleet_cmd("bench", "gateway", "--sections", "overhead,typo"), capture_output=True,
                          text=True, timeout=60, env=subprocess_env())
    assert done.returncode == 2 and "typo" in done.stderr and "--sections" in done.stderr


def test_bench_rollout_completes_a_staged_rollout_over_simulated_devices() -> None:
    result = _bench("rollout", "--devices", "20", "--idle-seconds", "1", "--rollout-interval", "0.2",
                    "--concurrency", "4")
    assert result["rollout_state"] == "completed" and result["errors"] == 0, result
    assert result["wave_sizes"] == [1, 1, 8, 10]
    gaps = result["last_commit_to_next_wave_s"]
    assert isinstance(gaps, list) and len(gaps) == 3 and all(isinstance(g, float) and g >= 0 for g in gaps)
    for window in ("idle", "rollout"):
        measured = result[window]
        assert isinstance(measured, dict) and measured["heartbeats"] > 0
        assert measured["server_cpu_ms_per_heartbeat"] > 0


def test_bench_results_posts_gzip_batches_to_a_real_control_plane() -> None:
    result = _bench("results", "--devices", "2", "--duration", "1", "--concurrency", "2", "--batch-size", "10")
    assert result["database"] == "sqlite" and result["errors"] == 0
    assert isinstance(result["batches"], int) and result["batches"] > 0


def test_bench_drift_evaluates_a_fleet_of_sketches() -> None:
    result = _bench("drift", "--devices", "3", "--features", "4", "--rows", "50")
    assert result["sketches"] == 12 and result["drift"] is False
    assert isinstance(result["evaluate_s"], float)


def test_bench_backend_splits_the_devices_between_replicas_on_postgres(postgres: PostgresServer) -> None:
    url = create_database(postgres, f"jf_{uuid.uuid4().hex[:8]}")
    result = _bench("backend", "--devices", "20", "--duration", "1", "--concurrency", "4", "--replicas", "2",
                    "--database-url", url)
    assert result["database"] == "postgresql" and result["replicas"] == 2 and result["errors"] == 0
    assert isinstance(result["heartbeats"], int) and result["heartbeats"] > 0
    done = subprocess.run(jetfleet_cmd("bench", "backend", "--replicas", "2"), capture_output=True, text=True,
                          timeout=60, env=subprocess_env())
    assert done.returncode == 2 and "--replicas needs --database-url postgresql" in done.stderr


def test_every_fault_of_the_matrix_names_a_test_that_exists() -> None:
    tests = [fault.test for fault in FAULTS]
    assert all(tests), "a fault without a covering test"
    listed = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *tests], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    collected = {line.split("[")[0] for line in listed.stdout.splitlines() if "::" in line}
    assert collected == set(tests)

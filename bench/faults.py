"""``jetfleet bench faults``: the fault matrix as one command.

Each fault is proven by a test that drives it against real processes (control plane, agents, model servers,
Traefik, the voice server) and asserts what a user sees and that nothing is lost. This runs those tests
together (from a source checkout: they live in tests/), and prints and writes the table.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Fault:
    fault: str
    user_sees: str
    test: str  # a pytest node id, "" when no test covers the fault yet


FAULTS = (
    Fault("control plane down (agents keep running)", "agents keep serving, back online at the next heartbeat",
          "tests/agent/test_agent_integration.py::test_agent_rides_out_a_control_plane_outage_without_restarting"),
    Fault("kill -9 of the agent mid-download", "the download resumes with Range where it stopped",
          "tests/ota/test_ota_faults.py::test_kill9_mid_download_resumes_with_range"),
    Fault("kill -9 of the agent in a swap's health check",
          "the old version keeps answering; restarted, the agent finishes the swap, no stray model server",
          "tests/ota/test_ota_faults.py::test_kill9_in_the_health_check_keeps_the_old_version_and_finishes_the_swap"),
    Fault("kill -9 of the agent while activating (the candidate's server being forked)",
          "the old version keeps answering; restarted, the agent adopts or drops the candidate, no stray server",
          "tests/ota/test_ota_faults.py::test_kill9_while_activating_keeps_the_old_version_and_finishes_the_swap"),
    Fault("kill -9 of the agent while a staged version waits on the update lock",
          "still deferred after the restart, nothing downloaded again; switched once the lock is released",
          "tests/ota/test_ota_faults.py::"
          "test_kill9_while_staged_under_the_update_lock_waits_for_the_lock_without_downloading_again"),
    Fault("dead model server, restarted agent", "the model is served again, no manual step",
          "tests/ota/test_ota_faults.py::test_dead_model_server_and_restarted_agent_are_healed"),
    Fault("disk too small for the download", "state DISK_SPACE in models status; nothing downloaded",
          "tests/ota/test_ota_faults.py::test_disk_shortfall_reports_disk_space_and_downloads_nothing"),
    Fault("corrupt artifact", "refused (sha256), nothing installed, old version serves",
          "tests/ota/test_ota_faults.py::test_corrupted_artifact_is_refused_and_nothing_installed"),
    Fault("bad signature, expired and replayed manifest", "manifest refused with the reason; old state kept",
          "tests/ota/test_ota_faults.py::test_tampered_expired_and_replayed_manifests_are_refused"),
    Fault("broken new version", "rolled back to the last known good; 0 failed requests during the swap",
          "tests/ota/test_ota_process.py::test_deploy_by_tag_swap_under_load_rollback_and_cleanup"),
    Fault("voice node SIGKILL behind the gateway", "no command of 1000 lost; the node leaves the pool",
          "tests/gateway/test_failures.py::test_sigkill_during_a_stream_of_1000_commands_loses_none"),
    Fault("oversized audio", "413 before the model runs",
          "tests/voice/test_server_api.py::test_oversized_upload_is_refused_from_its_declared_length"),
    Fault("garbage audio", "400/415 naming the problem, before the model runs",
          "tests/voice/test_server_api.py::test_unusable_audio_is_refused_before_the_model"),
    Fault("wrong TLS CA on a device", "the agent refuses to talk and logs why; keeps retrying",
          "tests/backend/test_tls.py::test_https_control_plane_with_a_private_ca"),
    Fault("Docker daemon restart", "the model containers come back and serve again, no manual step",
          "tests/ota/test_ota_docker.py::test_docker_executor_deploys_swaps_and_heals"),
    Fault("network partition of one node (netns)",
          "offline in the fleet, keeps serving and running its job; back online with every result exactly once",
          "tests/ota/test_network_partition.py::test_a_partitioned_node_keeps_serving_and_loses_no_result"),
    Fault("a control-plane replica killed (SIGKILL, two behind Traefik)",
          "the survivor leads within ~1 s and finishes the rollout; agents carry on, no registration fails",
          "tests/ha/test_replicas.py::test_a_sigkilled_replica_costs_no_registration_no_heartbeat_state_and_no_rollout"),
    Fault("the leading replica partitioned from PostgreSQL (it has not noticed yet)",
          "another replica leads; the old leader's next rollout round is refused (leader epoch), nothing written",
          "tests/backend/test_replica_sync.py::test_a_leader_cut_off_from_the_database_writes_nothing_once_another_leads"),
    Fault("the leading replica killed while a model's inputs drift",
          "the survivor exports the drift series at once (no gap for the alert), then evaluates it itself",
          "tests/ha/test_drift_replicas.py::test_every_replica_exports_the_leaders_drift_scores_and_the_survivor_goes_on"),
)


@dataclass(frozen=True)
class Outcome:
    fault: Fault
    result: str  # passed, failed, skipped, not covered
    seconds: float | None


def run(timeout: float) -> list[Outcome]:
    """Run every covering test in one pytest session (bounded by ``timeout``); one outcome per fault."""
    tests = sorted({f.test for f in FAULTS if f.test})
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *tests], cwd=REPO, timeout=timeout, check=False)
        cases = _cases(report) if report.exists() else {}
    return [Outcome(f, *cases.get(f.test, ("not run", None))) if f.test else Outcome(f, "not covered", None)
            for f in FAULTS]


def _cases(report: Path) -> dict[str, tuple[str, float]]:
    found: dict[str, tuple[str, float]] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        path = case.get("classname", "").replace(".", "/") + ".py"
        name = case.get("name", "").split("[")[0]
        result = "failed" if case.find("failure") is not None or case.find("error") is not None else \
            "skipped" if case.find("skipped") is not None else "passed"
        previous = found.get(f"{path}::{name}")
        seconds = float(case.get("time", 0)) + (previous[1] if previous else 0.0)
        if previous and previous[0] != "passed":
            result = previous[0]
        found[f"{path}::{name}"] = (result, seconds)
    return found


def table(outcomes: list[Outcome]) -> str:
    lines = ["| fault | what the user sees | data lost | result | test time |", "|---|---|---|---|---|"]
    for o in outcomes:
        lost = "none (asserted)" if o.result == "passed" else "-"
        took = f"{o.seconds:.0f} s" if o.seconds is not None else "-"
        lines.append(f"| {o.fault.fault} | {o.fault.user_sees} | {lost} | {o.result} | {took} |")
    return "\n".join(lines)


BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"


def write_table(path: Path, text: str) -> None:
    """Replace the table between the markers in ``path`` (or create the page around it)."""
    page = path.read_text() if path.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")

"""Every command README.md and docs/*.md tell a user to type is run here, as written, or listed below with
the reason it cannot run on this machine. A new command in a doc fails
``test_every_documented_command_is_run_or_listed`` until it is added to RUN (and run by a test below) or
to LISTED; a command that no longer exists or fails breaks the test that runs it.

Placeholders are replaced by what this machine has (free loopback ports, temp dirs, the device ids of the
agents started here); `[--option]` groups run left out or with their first alternative. Services are
shared per group: one control plane (started by the README's own command) with two real agents for the
fleet, models and gateway-from-backend commands; one voice server (started by docs/voice.md's command)
for the voice, fleet-file gateway and client commands.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from jetfleet.bench.testmodels import dense_reference, write_dense_onnx
from tests.docs.commands import OTHER_LANGUAGES, SHELL_LANGUAGES, DocShell, doc_files, documented, fences
from tests.modelserver.models import dense_onnx
from tests.ota.nodes import Node
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, subprocess_env, wait_until
from tests.support.system import require_binary

pytestmark = pytest.mark.slow

# Commands that run here, by the test that runs them.
RUN: dict[str, str] = {
    "python3 -m venv /opt/jetfleet && /opt/jetfleet/bin/pip install '.[backend,postgres]'":
        "tests/docs/test_checkout_install.py",
    "export PATH=/opt/jetfleet/bin:$PATH": "tests/docs/test_checkout_install.py",
    "export ADMIN_TOKEN=$(openssl rand -hex 24) FLEET_KEY=$(openssl rand -hex 24)":
        "tests/docs/test_checkout_install.py",
    'jetfleet backend serve --host 0.0.0.0 --port 8000 --database-url sqlite:////var/lib/jetfleet/fleet.db '
    '--data-dir /var/lib/jetfleet --admin-token "$ADMIN_TOKEN" --provisioning-key "$FLEET_KEY" --signing-key '
    '/var/lib/jetfleet/manifest-signing.key': "control_plane fixture",
    "jetfleet backend public-key --signing-key /var/lib/jetfleet/manifest-signing.key": "test_control_plane_keys",
    "jetfleet backend keygen /etc/jetfleet/manifest-2027.key": "test_control_plane_keys",
    "jetfleet backend public-key --signing-key /etc/jetfleet/manifest-2027.key [--id]": "test_control_plane_keys",
    "sudo jetfleet agent run --config /etc/jetson-client/config.json --once": "test_agent_once_then_fleet_commands",
    "jetfleet fleet status [--json]": "test_agent_once_then_fleet_commands",
    "jetfleet fleet show ID": "test_agent_once_then_fleet_commands",
    "jetfleet fleet reprovision ID": "test_agent_once_then_fleet_commands",
    "jetfleet fleet remove ID": "test_agent_once_then_fleet_commands",
    "jetfleet agent metrics [--json]": "test_agent_metrics_and_tegrastats",
    "tegrastats | jetfleet agent parse-tegrastats": "test_agent_metrics_and_tegrastats",
    "jetfleet models push yolov8n.onnx --name yolov8n --tag prod --golden-input x.npy --golden-output y.npy":
        "test_readme_models_swap_by_tag",
    "jetfleet models deploy yolov8n:prod --all": "test_readme_models_swap_by_tag",
    "jetfleet models push detector-v2.onnx --name detector": "test_readme_models_swap_by_tag",
    "jetfleet models tag yolov8n:prod 7": "test_readme_models_swap_by_tag",
    "jetfleet models status yolov8n [--json]": "test_readme_models_swap_by_tag",
    "jetfleet models wait yolov8n --version 7 --timeout 600": "test_readme_models_swap_by_tag",
    "jetfleet models infer yolov8n --url ENDPOINT --data '[[0.1, 0.2, 0.3, 0.4]]'": "test_readme_models_swap_by_tag",
    "jetfleet models ls": "test_readme_models_swap_by_tag",
    "jetfleet models undeploy yolov8n --all": "test_readme_models_swap_by_tag",
    "jetfleet models push detector.onnx --name detector --tag prod "
    "[--framework onnx|tensorrt|pytorch|tensorflow|sklearn] [--golden-input x.npy --golden-output y.npy]":
        "test_ota_doc_models_per_device",
    "jetfleet models deploy detector:prod --device jetson-01 --device jetson-02": "test_ota_doc_models_per_device",
    "jetfleet models tag detector:prod 2": "test_ota_doc_models_per_device",
    "jetfleet models status detector [--json]": "test_ota_doc_models_per_device",
    "jetfleet models wait NAME --version V": "test_ota_doc_models_per_device",
    "jetfleet models infer NAME --url ENDPOINT --data '[[...]]'": "test_ota_doc_models_per_device",
    "jetfleet models undeploy NAME --device ID": "test_ota_doc_models_per_device",
    "jetfleet gateway monitor --from-backend http://cp:8000 --token ... [--settings gateway.yml]":
        "test_gateway_from_the_control_plane",
    "jetfleet gateway run --from-backend http://cp:8000 --token T [--settings gateway.yml]":
        "test_gateway_from_the_control_plane",
    "jetfleet serve-model --model-dir /opt/ml-platform/models/detector/12 --name detector --version 12 --port 8012 "
    "[--host 127.0.0.1] [--runtime auto|tensorrt|onnxruntime] [--precision fp16|fp32] [--engine-cache DIR] "
    "[--max-batch 8] [--log-level info]": "test_serve_model_synopsis",
    "jetfleet voice serve --robot none --language nl-NL --port 8888 --node-name node-1 &": "voice_server fixture",
    "until curl -sf http://127.0.0.1:8888/health >/dev/null; do sleep 1; done": "voice_server fixture",
    'jetfleet voice send --jetson-url http://127.0.0.1:8888 --command "sta op"': "test_voice_quick_start",
    'jetfleet voice send --jetson-url http://127.0.0.1:8888 --say "sta op"': "test_voice_quick_start",
    "jetfleet voice send --jetson-url http://127.0.0.1:8888 --audio clip.wav --language nl": "test_voice_quick_start",
    'jetfleet voice send --jetson-url http://jetson-a:8888 --command "sta op"': "test_voice_quick_start",
    'from jetfleet.voice.client import JetsonVoiceClient with JetsonVoiceClient("http://jetson-1:8888") as jetson: '
    'print(jetson.send_command("sta op").command) # text, no speech-to-text print(jetson.send_audio("sta_op.wav")'
    '.robot) # any format FFmpeg decodes': "test_voice_quick_start",
    "jetfleet gateway render --fleet fleet.yml [--out DIR]": "test_gateway_from_a_fleet_file",
    "jetfleet gateway run --fleet fleet.yml": "test_gateway_from_a_fleet_file",
    "jetfleet gateway monitor --fleet fleet.yml [--once] [--json] [--interval 5]": "test_gateway_from_a_fleet_file",
    "jetfleet gateway health --port 8890 --traefik-api http://127.0.0.1:8080": "test_gateway_from_a_fleet_file",
    "python -m images.build local-base": "test_local_base_image",
    "curl -s http://127.0.0.1:8888/health": "test_voice_quick_start",
    # Tokens, audit, labels and selectors, jobs, rollouts: test_access_labels_jobs_and_rollouts
    **{command: "test_access_labels_jobs_and_rollouts" for command in (
        "jetfleet tokens create prometheus --scope read",
        "jetfleet tokens create ci --scope deploy --expires 90d",
        "jetfleet tokens ls [--json]",
        "jetfleet tokens revoke ci",
        "jetfleet audit",
        "jetfleet audit --since 24h --json",
        "jetfleet audit [--since 24h] [--json]",
        "jetfleet fleet label jetson-a role=vision site=lab-a",
        "jetfleet fleet label ID role=vision site=lab-a [--remove KEY]",
        "jetfleet fleet label jetson-a --remove site",
        "jetfleet fleet status",
        "jetfleet models deploy yolov8n:prod --selector 'role=vision,site in (lab-a, lab-b)'",
        "jetfleet models undeploy yolov8n --selector 'role!=vision'",
        "jetfleet models push model.onnx --name dense --tag prod --reference reference.npz",
        "jetfleet models push dense.onnx --name dense --tag prod --reference reference.npz",
        'jetfleet jobs create nightly --model dense:prod --input-dir /data/inbox --cron "0 2 * * *" --all',
        'jetfleet jobs create nightly --model dense:prod --input-dir /data/in --cron "0 2 * * *" --all',
        "jetfleet jobs create sweep --model dense:prod --input-dir /data/in --every 15m --device jf-a --device jf-b",
        "jetfleet jobs create sweep --model dense:prod --input-dir /data/in --every 15m --device ID",
        "jetfleet jobs create adhoc --model dense:prod --input-dir /data/adhoc --on-demand --all",
        "jetfleet jobs create vision-sweep --model dense:prod --input-dir /data/in --every 1h --selector 'role=vision'",
        "jetfleet jobs ls [--json]",
        "jetfleet jobs show sweep",
        "jetfleet jobs show nightly",
        "jetfleet jobs run adhoc [--device jf-a]",
        "jetfleet jobs run nightly [--device ID]",
        "jetfleet jobs results sweep [--device jf-a] [--json]",
        "jetfleet jobs results nightly [--device ID] [--json]",
        "jetfleet jobs delete sweep",
        "jetfleet drift status dense [--version 1] [--device jf-a] [--json]",
        "jetfleet drift status dense [--version 1] [--device ID] [--json]",
        'jetfleet models tag yolov8n:prod 8 --rollout "1,10%,50%,100%" --max-failures 2 --soak 10m '
        '--gate "error_ratio<0.01" --gate "p99_ms<50"',
        'jetfleet models tag yolov8n:prod 8 --rollout "1,10%,50%,100%" --max-failures 2 --soak 10m --gate "p99_ms<50"',
        "jetfleet models tag yolov8n:prod 8 --rollout \"1,100%\" --selector 'role=vision' --soak 10m",
        'jetfleet models tag yolov8n:prod 9 --rollout "1,100%" --soak 10m --device-timeout 1h',
        "jetfleet rollouts ls [--json]",
        "jetfleet rollouts show 3 [--json]",
        "jetfleet rollouts pause 3",
        "jetfleet rollouts resume 3",
        "jetfleet rollouts abort 3",
    )},
}

_COVERED = "run, with the same helper and options, by"
_JETSON = "needs a Jetson (L4T base image, JetPack's CUDA); built by .github/workflows/images.yml on arm64"
# Commands that cannot run here, with the reason.
LISTED: dict[str, str] = {
    "bash scripts/demo.sh": "tests/test_demo.py runs the demo end to end",
    "bash scripts/test.sh": "the test command itself: CI runs it (.github/workflows/tests.yml)",
    "python3 -m venv /opt/jetfleet && /opt/jetfleet/bin/pip install '.[voice]'":
        "the same install of the checkout as the control plane's (run by tests/docs/test_checkout_install.py) "
        "with another extra; scripts/bootstrap.sh installs every extra on each test run",
    "python -m images.build control-plane --base local --tag jetfleet/control-plane:latest":
        f"a 3-5 min image build on vfs; {_COVERED} tests/monitoring/test_compose_fleet.py",
    "sudo systemctl enable --now jetson-client": "systemd as PID 1 on a real host",
    "sudo scripts/install.sh": "sudo on a real host with systemd as PID 1; install.sh into a prefix is "
                                        "tested by tests/agent (issue 10 item 1)",
    "sudoedit /etc/jetson-client/config.json": "an interactive editor on a real host",
    "journalctl -u jetson-client -f": "the systemd journal (no systemd as PID 1 here)",
    "jetfleet voice serve --robot go2 --network-interface eth0 --language nl-NL --port 8888":
        "needs a Go2 on eth0; the same server with --network-interface lo against a DDS test peer is "
        "tests/voice/test_go2.py",
    "jetfleet bench gateway [--sections overhead,audio,failover]": "a benchmark (minutes); numbers in "
                                                                     "docs/benchmarks.md",
    "python -m images.build model-server --base l4t": _JETSON,
    "python -m images.build voice --base l4t": _JETSON,
    "python -m images.build model-server --base local":
        f"a 3-5 min image build on vfs; {_COVERED} tests/modelserver/test_container.py",
    "python -m images.build voice --base local": f"a 3-5 min image build on vfs; {_COVERED} tests/voice/test_image.py",
    "python -m images.build voice-go2 --base l4t": _JETSON,
    "cat /etc/nv_tegra_release": "a Jetson's L4T release file",
    "docker info --format '{{json .Runtimes}}'": "JetPack's nvidia runtime (a Jetson's Docker)",
    "sudo nvidia-ctk runtime configure --runtime=docker --set-as-default && sudo systemctl restart docker":
        "a Jetson's Docker under systemd",
    "docker pull ghcr.io/OWNER/REPO/voice-go2:r36.4.0": "no container registry can be reached here; CI pushes "
                                                         "the image on release tags",
    "docker tag ghcr.io/OWNER/REPO/voice-go2:r36.4.0 jetfleet/voice-go2:latest": "needs the pulled image (above)",
    "sudo ip addr add 192.168.123.18/24 dev eth0": "the NIC wired to a Go2 (only loopback here)",
    "ping -c 3 192.168.123.161": "a Go2's motion computer",
    "export JETFLEET_ADMIN_TOKEN=$(openssl rand -hex 24)": "part of the compose start of compose/fleet.yaml (below)",
    "until curl -sf http://127.0.0.1:8000/health >/dev/null; do sleep 1; done":
        "part of the compose start of compose/fleet.yaml; tests/monitoring/test_compose_fleet.py waits on the "
        "control plane's /health the same way before it creates the read token",
    "docker compose -f compose/fleet.yaml up -d backend": "the `docker compose` plugin is not installed here; "
                                                          f"{_COVERED} tests/monitoring/test_compose_fleet.py",
    'export JETFLEET_READ_TOKEN=$(jetfleet tokens create prometheus --scope read --token "$JETFLEET_ADMIN_TOKEN")':
        "part of the compose start (needs the composed control plane); `jetfleet tokens create` itself is run by "
        "test_access_labels_jobs_and_rollouts",
    "docker compose -f compose/fleet.yaml up -d": "the `docker compose` plugin is not installed here; "
                                                  "compose/fleet.yaml runs under real Compose in "
                                                  "tests/monitoring/test_compose_fleet.py",
    "scripts/install.sh --prefix /tmp/jf-stage": f"{_COVERED} tests/agent/test_install_ota.py (a 3-min venv install)",
    "scripts/install.sh --prefix /tmp/jf-stage --extras ota,modelserver": f"{_COVERED} tests/agent/test_install_ota.py",
    "JETFLEET_NODE_NAME=jetson-1 JETFLEET_ROBOT_INTERFACE=eth0 docker compose -f compose/node.yaml up -d":
        "the nvidia runtime and a Go2's NIC (a Jetson); compose/node.yaml runs with runc under real Compose in "
        "tests/voice/test_compose_node.py",
    "jetfleet backend serve ... --drift-webhook https://ci/retrain --webhook-secret \"$SECRET\" "
    "--results-retention 30d":
        "an excerpt (`...`: the serve flags above) with an outside URL; the same flags against a local receiver are "
        "tests/backend/test_drift_webhook.py",
    "jetfleet backend serve ... --drift-webhook https://ci.example/retrain --webhook-secret \"$SECRET\"":
        "an excerpt with an outside URL; tests/backend/test_drift_webhook.py runs the flags against a local receiver",
    "python -m images.build gateway --base local --tag jetfleet/gateway:latest":
        f"an image build on vfs; {_COVERED} tests/gateway/test_compose_live.py",
    "JETFLEET_BACKEND_URL=http://cp:8000 JETFLEET_TOKEN=READ_TOKEN docker compose -f compose/gateway.yaml up -d":
        "the `docker compose` plugin is not installed here; compose/gateway.yaml runs under real Compose in "
        "tests/gateway/test_compose_live.py",
    "jetfleet bench faults --out docs/reliability.md": "drives every fault test (tens of minutes); the same tests run "
                                                       "in the suite itself",
    "flock -s /run/lock/jetson-client.update.lock -c './run-inspection-route.sh'":
        "a robot task script on a device; real flock holders (one of them another user) are "
        "tests/rollouts/test_agent_units.py",
    'from pathlib import Path from jetfleet.updatelock import hold with '
    'hold(Path("/run/lock/jetson-client.update.lock")): run_robot_task()':
        "calls the user's own run_robot_task(); jetfleet.updatelock.hold is tested in "
                        "tests/rollouts/test_agent_units.py",
    'export JETFLEET_BACKEND_URL=http://cp:8000 JETFLEET_TOKEN="$ADMIN_TOKEN"':
        "sets the CLI's defaults for the commands after it (the tests pass them)",
    'jetfleet backend serve --host 0.0.0.0 --port 8443 --admin-token "$ADMIN_TOKEN" '
    '--tls-cert /etc/jetfleet/tls/cp.pem --tls-key /etc/jetfleet/tls/cp.key':
        "needs a certificate for the host; tests/backend/test_tls.py serves HTTPS "
                                          "with a CA and certificate it makes",
    "jetfleet backend serve --host 0.0.0.0 --port 8000 --database-url "
    "postgresql+psycopg://jetfleet:PASS@db/jetfleet --admin-token \"$ADMIN_TOKEN\" --data-dir /mnt/jetfleet-shared "
    "--replica-name cp-1": "needs a PostgreSQL host and a shared volume; tests/ha/test_replicas.py starts two "
                           "replicas with these flags on a local PostgreSQL and one data dir",
    "jetfleet backend serve --host 0.0.0.0 --port 8000 --database-url "
    "postgresql+psycopg://jetfleet:PASS@db/jetfleet --admin-token \"$ADMIN_TOKEN\" --data-dir /mnt/jetfleet-shared "
    "--replica-name cp-2": "the second replica of the example above (tests/ha/test_replicas.py)",
    "docker run --network host jetfleet/voice:latest --robot none --node-name node-1":
        f"needs the voice image (see above); {_COVERED} tests/voice/test_image.py",
}
ADMIN_TOKEN, FLEET_KEY = "readme-admin-token", "readme-fleet-key"
WAIT_FOR_VOICE = "until curl -sf http://127.0.0.1:8888/health >/dev/null; do sleep 1; done"


def test_every_fence_names_its_language() -> None:
    unnamed = [fence.where for path in doc_files() for fence in fences(path)
               if fence.language not in SHELL_LANGUAGES | OTHER_LANGUAGES]
    assert not unnamed, f"fenced blocks without a known language (bash, console, text, json, yaml, python): {unnamed}"


def test_every_documented_command_is_run_or_listed() -> None:
    commands = documented()
    assert not set(RUN) & set(LISTED)
    unknown = {command: where for command, where in commands.items() if command not in RUN and command not in LISTED}
    assert not unknown, ("documented commands neither run nor listed in tests/docs/test_readme.py:\n"
                         + "\n".join(f"  {where}: {command}" for command, where in unknown.items()))
    stale = sorted((set(RUN) | set(LISTED)) - set(commands))
    assert not stale, f"no longer documented (remove from tests/docs/test_readme.py): {stale}"


# ------------------------------------------------------------------------------------------------
# The control plane, agents, fleet and models


@dataclass
class ControlPlane:
    url: str
    port: int
    shell: DocShell
    data: Path

    @property
    def subs(self) -> dict[str, str]:
        return {"/var/lib/jetfleet": str(self.data)}


def _shell(cwd: Path, **extra: str) -> DocShell:
    env = subprocess_env(COLUMNS="250", **extra)  # rich tables: room for every column
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])  # jetfleet, python
    return DocShell(cwd, env)


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    root = tmp_path_factory.mktemp("cp")
    port = free_port()
    shell = _shell(root, ADMIN_TOKEN=ADMIN_TOKEN, FLEET_KEY=FLEET_KEY,
                   JETFLEET_BACKEND_URL=f"http://127.0.0.1:{port}", JETFLEET_TOKEN=ADMIN_TOKEN)
    data = root / "var-lib-jetfleet"
    data.mkdir()
    plane = ControlPlane(f"http://127.0.0.1:{port}", port, shell, data)
    process = shell.start(next(command for command, test in RUN.items() if test == "control_plane fixture"),
                          root / "backend.log", {**plane.subs, "0.0.0.0": "127.0.0.1", "--port 8000": f"--port {port}"})
    try:
        process.wait_http(f"{plane.url}/health", timeout=60)
        yield plane
    finally:
        process.stop()


@pytest.fixture(scope="module")
def nodes(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    root = tmp_path_factory.mktemp("nodes")
    started = [Node(root, control_plane.url, name, api_key=FLEET_KEY).start() for name in ("jetson-01", "jetson-02")]
    try:
        for node in started:
            wait_until(lambda n=node: httpx.get(f"{control_plane.url}/api/v1/edge-devices/{n.name}", timeout=5,  # type: ignore[misc]
                                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200,
                       60, interval=0.2, what=f"{node.name} registered")
        yield started
    finally:
        for node in started:
            node.stop()


def test_control_plane_keys(control_plane: ControlPlane) -> None:
    shell = control_plane.shell
    pinned = shell.run("jetfleet backend public-key --signing-key /var/lib/jetfleet/manifest-signing.key",
                       control_plane.subs)
    assert len(base64.b64decode(pinned.strip(), validate=True)) == 32  # the Ed25519 key the server signs with
    etc = control_plane.data / "etc-jetfleet"
    subs = {"/etc/jetfleet": str(etc)}
    etc.mkdir()
    new_key = shell.run("jetfleet backend keygen /etc/jetfleet/manifest-2027.key", subs)
    assert (etc / "manifest-2027.key").stat().st_mode & 0o777 == 0o600
    public = shell.run("jetfleet backend public-key --signing-key /etc/jetfleet/manifest-2027.key [--id]", subs)
    key_id = shell.run("jetfleet backend public-key --signing-key /etc/jetfleet/manifest-2027.key [--id]", subs,
                       optional="keep")
    assert public.strip() in new_key and key_id.strip() and key_id.strip() != public.strip()


def test_agent_once_then_fleet_commands(control_plane: ControlPlane) -> None:
    shell, etc = control_plane.shell, control_plane.data / "etc-jetson-client"
    etc.mkdir()
    config = {"backend_url": control_plane.url, "api_key": FLEET_KEY, "device_id": "jetson-once",
              "state_dir": str(etc / "state"), "models_dir": str(etc / "models"), "metrics_port": 0,
              "log_file": None}
    (etc / "config.json").write_text(json.dumps(config))
    shell.run("sudo jetfleet agent run --config /etc/jetson-client/config.json --once",
              {"sudo ": "", "/etc/jetson-client": str(etc)}, timeout=120)  # the tests run as the owner of etc
    pinned = shell.run("jetfleet backend public-key --signing-key /var/lib/jetfleet/manifest-signing.key",
                       control_plane.subs).strip()
    assert any(pinned in path.read_text(errors="replace") for path in (etc / "state").rglob("*") if path.is_file())
    status = json.loads(shell.run("jetfleet fleet status [--json]", optional="keep"))
    assert "jetson-once" in json.dumps(status)
    assert "jetson-once" in shell.run("jetfleet fleet status [--json]")
    assert "jetson-once" in shell.run("jetfleet fleet show ID", {"ID": "jetson-once"})
    shell.run("jetfleet fleet reprovision ID", {"ID": "jetson-once"})
    shell.run("jetfleet fleet remove ID", {"ID": "jetson-once"})
    assert "jetson-once" not in shell.run("jetfleet fleet status [--json]", optional="keep")


def _dense_files(directory: Path, stem: str, scale: float) -> None:
    write_dense_onnx(directory / f"{stem}.onnx", 4, 3, seed=0, scale=scale)


def _golden(directory: Path, scale: float) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    np.save(directory / "x.npy", x)
    np.save(directory / "y.npy", dense_reference(4, 3, 0, scale, x))


def _endpoint(status: dict, device: str) -> str:  # type: ignore[type-arg]
    return str(next(entry["endpoint"] for entry in status["devices"] if entry["device_id"] == device))


def _printed(answer: str) -> list[float]:
    """`jetfleet models infer` prints `  output [1, 3]: [a, b, c]`."""
    line = next(line for line in answer.splitlines() if line.strip().startswith("output"))
    return [float(value) for value in json.loads(line.split(": ", 1)[1])]


def test_readme_models_swap_by_tag(control_plane: ControlPlane, nodes: list[Node]) -> None:
    shell = control_plane.shell
    _dense_files(shell.cwd, "yolov8n", 1.0)
    _golden(shell.cwd, 1.0)
    _dense_files(shell.cwd, "yolov8n-v2", 2.0)
    shell.run("jetfleet models push yolov8n.onnx --name yolov8n --tag prod --golden-input x.npy --golden-output y.npy")
    shell.run("jetfleet models deploy yolov8n:prod --all")
    shell.run("jetfleet models wait yolov8n --version 7 --timeout 600", {"7": "1", "600": "120"}, timeout=150)
    shell.run("jetfleet models push detector-v2.onnx --name detector", {"detector": "yolov8n"})
    shell.run("jetfleet models tag yolov8n:prod 7", {"7": "2"})
    shell.run("jetfleet models wait yolov8n --version 7 --timeout 600", {"7": "2", "600": "120"}, timeout=150)
    assert "committed" in shell.run("jetfleet models status yolov8n [--json]")
    status = json.loads(shell.run("jetfleet models status yolov8n [--json]", optional="keep"))
    assert {(entry["version"], entry["state"]) for entry in status["devices"]} == {(2, "committed")}
    answer = shell.run("jetfleet models infer yolov8n --url ENDPOINT --data '[[0.1, 0.2, 0.3, 0.4]]'",
                       {"ENDPOINT": _endpoint(status, "jetson-01")})
    assert answer.startswith("yolov8n version 2:")
    assert np.allclose(_printed(answer), dense_reference(4, 3, 0, 2.0, np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)),
                       atol=1e-4)
    assert "yolov8n" in shell.run("jetfleet models ls")
    shell.run("jetfleet models undeploy yolov8n --all")


def test_ota_doc_models_per_device(control_plane: ControlPlane, nodes: list[Node]) -> None:
    shell = control_plane.shell
    _dense_files(shell.cwd, "detector", 1.0)
    _golden(shell.cwd, 1.0)
    _dense_files(shell.cwd, "detector-v2", 3.0)
    shell.run("jetfleet models push detector.onnx --name detector --tag prod "
              "[--framework onnx|tensorrt|pytorch|tensorflow|sklearn] [--golden-input x.npy --golden-output y.npy]",
              optional="keep")
    shell.run("jetfleet models deploy detector:prod --device jetson-01 --device jetson-02")
    shell.run("jetfleet models wait NAME --version V", {"NAME": "detector", "V": "1"}, timeout=150)
    shell.run("jetfleet models push detector-v2.onnx --name detector")
    shell.run("jetfleet models tag detector:prod 2")
    shell.run("jetfleet models wait NAME --version V", {"NAME": "detector", "V": "2"}, timeout=150)
    status = json.loads(shell.run("jetfleet models status detector [--json]", optional="keep"))
    assert {entry["device_id"]: entry["version"] for entry in status["devices"]} == {"jetson-01": 2, "jetson-02": 2}
    assert "detector" in shell.run("jetfleet models status detector [--json]")
    answer = shell.run("jetfleet models infer NAME --url ENDPOINT --data '[[...]]'",
                       {"NAME": "detector", "ENDPOINT": _endpoint(status, "jetson-02"), "[[...]]": "[[1, 1, 1, 1]]"})
    assert answer.startswith("detector version 2:")
    assert np.allclose(_printed(answer), dense_reference(4, 3, 0, 3.0, np.ones((1, 4), np.float32)), atol=1e-4)
    shell.run("jetfleet models undeploy NAME --device ID", {"NAME": "detector", "ID": "jetson-02"})


def test_gateway_from_the_control_plane(control_plane: ControlPlane, nodes: list[Node], tmp_path: Path) -> None:
    shell = control_plane.shell
    ports = {key: free_port() for key in ("port", "api_port", "metrics_port", "health_port")}
    (shell.cwd / "gateway.yml").write_text(yaml.safe_dump({"gateway": {**ports, "host": "127.0.0.1",
                                                                          "metrics_host": "127.0.0.1"}}))
    backend = {"http://cp:8000": control_plane.url}
    gateway = shell.start("jetfleet gateway run --from-backend http://cp:8000 --token T [--settings gateway.yml]",
                          tmp_path / "gateway.log", {**backend, "--token T": f"--token {ADMIN_TOKEN}"}, optional="keep")
    monitor = shell.start("jetfleet gateway monitor --from-backend http://cp:8000 --token ... [--settings gateway.yml]",
                          tmp_path / "monitor.log", {**backend, "--token ...": f"--token {ADMIN_TOKEN}"},
                          optional="keep")
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{ports['health_port']}/health") and gateway.alive(), 60,
                   what="the gateway's /health")
        # the fleet from the registry, and Traefik's services (the monitor reads the gateway's own settings)
        wait_until(lambda: "jetson-02" in monitor.output() and "@http" in monitor.output(), 60,
                   what="the monitor's tables of the fleet and of Traefik's services")
        assert gateway.alive() and monitor.alive()
        monitor.signal(signal.SIGINT)  # Ctrl-C
        assert monitor.proc.wait(timeout=30) == 0, monitor.output()
        assert "Traceback" not in monitor.output(), monitor.output()
    finally:
        monitor.stop()
        gateway.stop()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# The agent on its own, the model server


def test_agent_metrics_and_tegrastats(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fixtures = REPO_ROOT / "tests/fixtures/jetson"
    stand_in = bin_dir / "tegrastats"  # NVIDIA's tool exists on a Jetson only: the fixture tool prints real lines
    stand_in.write_text(f"#!/bin/sh\nexec {sys.executable} {fixtures / 'bin/fake-tegrastats'} "
                        f"--lines {fixtures / 'tegrastats/agx-orin-jp6.txt'} --count 3 --interval 10\n")
    stand_in.chmod(0o755)
    shell = _shell(tmp_path)
    shell.env["PATH"] = os.pathsep.join([str(bin_dir), shell.env["PATH"]])
    assert shell.run("jetfleet agent metrics [--json]").strip()
    snapshot = json.loads(shell.run("jetfleet agent metrics [--json]", optional="keep"))
    assert snapshot
    lines = shell.run("tegrastats | jetfleet agent parse-tegrastats").splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)


def test_serve_model_synopsis(tmp_path: Path) -> None:
    model_dir = dense_onnx(tmp_path / "models", name="detector", version="12")
    shell = _shell(tmp_path)
    command = next(command for command, test in RUN.items() if test == "test_serve_model_synopsis")
    for optional in ("drop", "keep"):
        port = free_port()
        subs = {"/opt/ml-platform/models/detector/12": str(model_dir), "--port 8012": f"--port {port}"}
        if optional == "keep":
            subs["DIR"] = str(tmp_path / "engines")
        server = shell.start(command, tmp_path / f"serve-{optional}.log", subs, optional=optional)
        try:
            server.wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=60)
            body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
            answer = httpx.post(f"http://127.0.0.1:{port}/v2/models/detector/versions/12/infer", json=body,
                                timeout=10)
            assert answer.status_code == 200, answer.text
        finally:
            server.stop()


# ------------------------------------------------------------------------------------------------
# Voice and the gateway from a fleet file


@dataclass
class Voice:
    url: str
    port: int
    shell: DocShell


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voice]:
    root = tmp_path_factory.mktemp("voice")
    port = free_port()
    shell = _shell(root)
    process = shell.start("jetfleet voice serve --robot none --language nl-NL --port 8888 --node-name node-1 &",
                          root / "voice.log", {"--port 8888": f"--port {port}"})
    try:
        shell.run(WAIT_FOR_VOICE, {"127.0.0.1:8888": f"127.0.0.1:{port}"}, timeout=180)
        yield Voice(f"http://127.0.0.1:{port}", port, shell)
    finally:
        process.stop()


def test_voice_quick_start(voice_server: Voice) -> None:
    require_binary("espeak-ng", ["espeak-ng"])
    require_binary("sox", ["sox"])
    from jetfleet.voice.synth import synthesize

    shell, here = voice_server.shell, {"127.0.0.1:8888": f"127.0.0.1:{voice_server.port}"}
    health = json.loads(shell.run("curl -s http://127.0.0.1:8888/health", here))
    assert health["status"] == "ok" and health["node"] == "node-1" and health["robot"] == "none"
    assert "stand_up" in shell.run('jetfleet voice send --jetson-url http://127.0.0.1:8888 --command "sta op"', here)
    assert "stand_up" in shell.run('jetfleet voice send --jetson-url http://jetson-a:8888 --command "sta op"',
                                   {"jetson-a:8888": f"127.0.0.1:{voice_server.port}"})
    shell.run('jetfleet voice send --jetson-url http://127.0.0.1:8888 --say "sta op"', here, timeout=120)
    synthesize("loop vooruit", "nl", shell.cwd / "clip.wav")
    assert "walk_forward" in shell.run(
        "jetfleet voice send --jetson-url http://127.0.0.1:8888 --audio clip.wav --language nl", here, timeout=120)
    synthesize("sta op", "nl", shell.cwd / "sta_op.wav")
    snippet = next(command for command in RUN if command.startswith("from jetfleet.voice.client"))
    printed = shell.run(snippet, {"http://jetson-1:8888": voice_server.url}, timeout=120)
    assert "stand_up" in printed


def test_gateway_from_a_fleet_file(voice_server: Voice, tmp_path: Path) -> None:
    shell = voice_server.shell
    ports = {key: free_port() for key in ("port", "api_port", "metrics_port", "health_port")}
    (shell.cwd / "fleet.yml").write_text(yaml.safe_dump({
        "gateway": {**ports, "host": "127.0.0.1", "metrics_host": "127.0.0.1"},
        "nodes": [{"name": "node-1", "url": voice_server.url, "roles": ["voice"]}]}))
    shell.run("jetfleet gateway render --fleet fleet.yml [--out DIR]")
    shell.run("jetfleet gateway render --fleet fleet.yml [--out DIR]", {"DIR": str(tmp_path / "rendered")},
              optional="keep")
    assert (tmp_path / "rendered" / "dynamic.yml").is_file()
    gateway = shell.start("jetfleet gateway run --fleet fleet.yml", tmp_path / "gateway.log")
    health_port = free_port()
    health: ManagedProcess | None = None
    try:
        # through the client entrypoint: 200 there means Traefik has switched to the routes, not only listed them
        wait_until(lambda: _status(f"http://127.0.0.1:{ports['port']}/health") == 200, 60,
                   what="the gateway healthy")
        answer = httpx.post(f"http://127.0.0.1:{ports['port']}/api/voice/listen", json={"command": "sta op"},
                            timeout=30).json()
        assert answer["command"]["action"] == "stand_up" and answer["node"] == "node-1"
        report = json.loads(shell.run("jetfleet gateway monitor --fleet fleet.yml [--once] [--json] [--interval 5]",
                                      optional="keep"))
        assert "node-1" in json.dumps(report)
        health = shell.start("jetfleet gateway health --port 8890 --traefik-api http://127.0.0.1:8080",
                             tmp_path / "health.log", {"8890": str(health_port), "8080": str(ports["api_port"])})
        wait_until(lambda: _status(f"http://127.0.0.1:{health_port}/health") == 200, 30, what="gateway health")
    finally:
        if health is not None:
            health.stop()
        gateway.stop()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


# ------------------------------------------------------------------------------------------------
# Images


@pytest.mark.docker
def test_local_base_image(docker_engine: object, tmp_path: Path) -> None:
    from tests.support.docker_engine import DockerEngine

    assert isinstance(docker_engine, DockerEngine)
    if not Path.home().joinpath(".cache/jetfleet/debian-bookworm-minbase.tar.gz").is_file():
        require_binary("debootstrap", ["debootstrap"])
    shell = _shell(REPO_ROOT, **docker_engine.env())
    shell.run("python -m images.build local-base", timeout=600)
    assert docker_engine.client.images.get("local/debian:bookworm")


# ------------------------------------------------------------------------------------------------
# Tokens and audit, labels and selectors, jobs and drift, rollouts (after the models tests: yolov8n exists)


def test_access_labels_jobs_and_rollouts(control_plane: ControlPlane, nodes: list[Node]) -> None:
    shell = control_plane.shell
    read_token = shell.run("jetfleet tokens create prometheus --scope read").strip().splitlines()[-1].strip()
    shell.run("jetfleet tokens create ci --scope deploy --expires 90d")
    assert {"prometheus", "ci"} <= {t["name"] for t in json.loads(shell.run("jetfleet tokens ls [--json]",
                                                                            optional="keep"))}
    assert "prometheus" in shell.run("jetfleet tokens ls [--json]")
    shell.run("jetfleet tokens revoke ci")
    assert "changes" in shell.run("jetfleet audit") and "changes" in shell.run("jetfleet audit [--since 24h] [--json]")
    events = json.loads(shell.run("jetfleet audit --since 24h --json"))
    assert any(event["operation"] == "revoke_token" and "ci" in json.dumps(event) for event in events), events[-3:]
    assert read_token and read_token not in shell.run("jetfleet audit --since 24h --json")

    one, two = (node.name for node in nodes)
    shell.run("jetfleet fleet label jetson-a role=vision site=lab-a", {"jetson-a": one})
    shell.run("jetfleet fleet label ID role=vision site=lab-a [--remove KEY]", {"ID": one})
    assert "site=lab-a" in shell.run("jetfleet fleet status")
    deployed = shell.run("jetfleet models deploy yolov8n:prod --selector 'role=vision,site in (lab-a, lab-b)'")
    assert one in deployed and two not in deployed
    shell.run("jetfleet fleet label jetson-a --remove site", {"jetson-a": one})
    assert "site=lab-a" not in shell.run("jetfleet fleet status")

    _jobs_and_drift(shell, one, two)
    _rollout(shell, one)
    shell.run("jetfleet models deploy yolov8n:prod --all")
    undeployed = shell.run("jetfleet models undeploy yolov8n --selector 'role!=vision'")
    assert two in undeployed and one not in undeployed


def _jobs_and_drift(shell: DocShell, one: str, two: str) -> None:
    write_dense_onnx(shell.cwd / "model.onnx", 4, 3, seed=0)
    (shell.cwd / "dense.onnx").write_bytes((shell.cwd / "model.onnx").read_bytes())
    np.savez(shell.cwd / "reference.npz", input=np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32))
    shell.run("jetfleet models push model.onnx --name dense --tag prod --reference reference.npz")
    shell.run("jetfleet models push dense.onnx --name dense --tag prod --reference reference.npz")
    devices = {"jf-a": one, "jf-b": two}
    inbox = {"/data/inbox": str(shell.cwd / "inbox"), "/data/in": str(shell.cwd / "in"),
             "/data/adhoc": str(shell.cwd / "adhoc")}
    shell.run('jetfleet jobs create nightly --model dense:prod --input-dir /data/inbox --cron "0 2 * * *" --all',
              {"/data/inbox": inbox["/data/inbox"]})
    shell.run("jetfleet jobs create sweep --model dense:prod --input-dir /data/in --every 15m --device jf-a "
              "--device jf-b", {**devices, "/data/in": inbox["/data/in"]})
    shell.run("jetfleet jobs create adhoc --model dense:prod --input-dir /data/adhoc --on-demand --all",
              {"/data/adhoc": inbox["/data/adhoc"]})
    labelled = shell.run("jetfleet jobs create vision-sweep --model dense:prod --input-dir /data/in --every 1h "
                         "--selector 'role=vision'", {"/data/in": inbox["/data/in"]})
    assert one in labelled and two not in labelled  # jetson-a is the one labelled role=vision
    names = {job["name"] for job in json.loads(shell.run("jetfleet jobs ls [--json]", optional="keep"))}
    assert names == {"nightly", "sweep", "adhoc", "vision-sweep"}
    assert "sweep" in shell.run("jetfleet jobs ls [--json]")
    assert "15m" in shell.run("jetfleet jobs show sweep") or "900" in shell.run("jetfleet jobs show sweep")
    assert "nightly" in shell.run("jetfleet jobs show nightly")
    shell.run("jetfleet jobs run adhoc [--device jf-a]", {"jf-a": one}, optional="keep")
    shell.run("jetfleet jobs run nightly [--device ID]", {"ID": one}, optional="keep")
    shell.run("jetfleet jobs results sweep [--device jf-a] [--json]", {"jf-a": one}, optional="keep")
    shell.run("jetfleet jobs results nightly [--device ID] [--json]", {"ID": one}, optional="keep")
    shell.run("jetfleet jobs delete sweep")
    for command in ("jetfleet drift status dense [--version 1] [--device jf-a] [--json]",
                    "jetfleet drift status dense [--version 1] [--device ID] [--json]"):
        report = json.loads(shell.run(command, optional="keep", subs={"jf-a": one} if "jf-a" in command
                                      else {"ID": one}))
        assert report["model"] == "dense" and report["drift"] is False
    shell.run("jetfleet jobs create nightly --model dense:prod --input-dir /data/in --cron \"0 2 * * *\" --all",
              {"nightly": "nightly2", "/data/in": inbox["/data/in"]})
    shell.run("jetfleet jobs create sweep --model dense:prod --input-dir /data/in --every 15m --device ID",
              {"ID": one, "/data/in": inbox["/data/in"]})


def _rollout(shell: DocShell, one: str) -> None:
    shell.run('jetfleet models tag yolov8n:prod 8 --rollout "1,10%,50%,100%" --max-failures 2 --soak 10m '
              '--gate "error_ratio<0.01" --gate "p99_ms<50"', {" 8 ": " 1 "})
    rollout = json.loads(shell.run("jetfleet rollouts ls [--json]", optional="keep"))[-1]
    assert rollout["to_version"] == 1 and rollout["state"] in ("running", "completed", "halted")
    assert "yolov8n" in shell.run("jetfleet rollouts ls [--json]")
    ident = {" 3": f" {rollout['id']}"}
    shown = json.loads(shell.run("jetfleet rollouts show 3 [--json]", ident, optional="keep"))
    assert [d["device_id"] for d in shown["devices"]] == [one]
    assert "yolov8n" in shell.run("jetfleet rollouts show 3 [--json]", ident)
    shell.run("jetfleet rollouts pause 3", ident)
    shell.run("jetfleet rollouts resume 3", ident)
    shell.run("jetfleet rollouts abort 3", ident)
    assert json.loads(shell.run("jetfleet rollouts show 3 [--json]", ident, optional="keep"))["state"] == "aborted"
    shell.run('jetfleet models tag yolov8n:prod 8 --rollout "1,10%,50%,100%" --max-failures 2 --soak 10m '
              '--gate "p99_ms<50"', {" 8 ": " 1 "})
    last = json.loads(shell.run("jetfleet rollouts ls [--json]", optional="keep"))[-1]
    shell.run("jetfleet rollouts abort 3", {" 3": f" {last['id']}"})
    # the soak of 10 minutes keeps each running (or halted) until it is aborted here
    shell.run("jetfleet models tag yolov8n:prod 8 --rollout \"1,100%\" --selector 'role=vision' --soak 10m",
              {" 8 ": " 1 "})
    limited = json.loads(shell.run("jetfleet rollouts ls [--json]", optional="keep"))[-1]
    assert limited["selector"] == "role=vision" and [d["device_id"] for d in limited["devices"]] == [one]
    shell.run("jetfleet rollouts abort 3", {" 3": f" {limited['id']}"})
    shell.run('jetfleet models tag yolov8n:prod 9 --rollout "1,100%" --soak 10m --device-timeout 1h', {" 9 ": " 1 "})
    timed = json.loads(shell.run("jetfleet rollouts ls [--json]", optional="keep"))[-1]
    assert timed["device_timeout_seconds"] == 3600 and timed["id"] != limited["id"]
    shell.run("jetfleet rollouts abort 3", {" 3": f" {timed['id']}"})

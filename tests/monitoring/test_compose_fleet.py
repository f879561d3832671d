"""compose/fleet.yaml: the control-plane image and Prometheus under real Docker Compose, watching a real agent.

Grafana cannot be pulled here (no registry); its provisioning is checked against the compose file, and
every dashboard query runs against a real Prometheus in test_prometheus.py.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.agent.test_agent_integration import agent_config, start_agent
from tests.monitoring.test_prometheus import query
from tests.support.docker_engine import DockerEngine
from tests.support.processes import REPO_ROOT, free_port, subprocess_env, wait_until
from tests.support.system import require_binary

COMPOSE = REPO_ROOT / "compose"
CONTROL_PLANE_TAG = "jetfleet/control-plane:test"
PROMETHEUS_TAG = "local/prometheus:test"


def _compose_file() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((COMPOSE / "fleet.yaml").read_text())  # type: ignore[no-any-return]


def test_grafana_provisioning_matches_the_stack() -> None:
    grafana = _compose_file()["services"]["grafana"]
    mounts = {volume.split(":")[1]: COMPOSE / volume.split(":")[0] for volume in grafana["volumes"]
              if volume.startswith("./")}
    datasources = yaml.safe_load((mounts["/etc/grafana/provisioning"] / "datasources/prometheus.yaml").read_text())
    assert datasources["datasources"][0]["url"].startswith("http://127.0.0.1:9090")
    providers = yaml.safe_load((mounts["/etc/grafana/provisioning"] / "dashboards/jetfleet.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert sorted(p.name for p in mounts["/var/lib/grafana/dashboards"].glob("*.json")) == ["jetfleet-drift.json",
                                                                                    "jetfleet-fleet.json"]
    prometheus = _compose_file()["services"]["prometheus"]
    assert "--web.listen-address=${JETFLEET_PROMETHEUS_ADDRESS:-127.0.0.1:9090}" in prometheus["command"]


def test_compose_refuses_to_start_without_an_admin_token() -> None:
    compose_bin = require_binary("docker-compose", [], search=[str(Path(sys.executable).parent)])
    done = subprocess.run([compose_bin, "-f", str(COMPOSE / "fleet.yaml"), "config"], capture_output=True, text=True,
                          env=subprocess_env(JETFLEET_ADMIN_TOKEN=""), timeout=60)
    assert "required variable JETFLEET_ADMIN_TOKEN is missing a value" in done.stderr


@pytest.fixture(scope="session")
def control_plane_image(docker_engine: DockerEngine, local_debian_base: str) -> str:
    from images.build import build_image

    build_image(docker_engine.client, "control-plane", CONTROL_PLANE_TAG, "local")
    return CONTROL_PLANE_TAG


@pytest.fixture(scope="session")
def prometheus_image(docker_engine: DockerEngine, local_debian_base: str, tmp_path_factory: pytest.TempPathFactory
                     ) -> str:
    """The Debian prometheus binary in an image shaped like prom/prometheus (which cannot be pulled here)."""
    binary = require_binary("prometheus", ["prometheus"])
    context = tmp_path_factory.mktemp("prometheus-image")
    (context / "prometheus").write_bytes(Path(binary).read_bytes())
    (context / "Dockerfile").write_text(
        f"FROM {local_debian_base}\nCOPY prometheus /bin/prometheus\n"
        "RUN chmod 0755 /bin/prometheus && mkdir /prometheus && chown 65534:65534 /prometheus\n"
        'USER 65534\nENTRYPOINT ["/bin/prometheus"]\n')
    docker_engine.client.images.build(path=str(context), tag=PROMETHEUS_TAG, rm=True, network_mode="host")
    return PROMETHEUS_TAG


@pytest.fixture
def fleet_stack(docker_engine: DockerEngine, control_plane_image: str, prometheus_image: str,
                tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    compose_bin = require_binary("docker-compose", [], search=[str(Path(sys.executable).parent)])
    port, prometheus_port = free_port(), free_port()
    config = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text().replace(
        "127.0.0.1:8000", f"127.0.0.1:{port}"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][1]["http_sd_configs"][0]["refresh_interval"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    env = subprocess_env(**docker_engine.env(), JETFLEET_ADMIN_TOKEN=secrets.token_hex(16), JETFLEET_PORT=str(port),
                         JETFLEET_PROMETHEUS_ADDRESS=f"127.0.0.1:{prometheus_port}",
                         JETFLEET_PROMETHEUS_CONFIG=str(tmp_path / "prometheus.yml"),
                         JETFLEET_CONTROL_PLANE_IMAGE=control_plane_image, JETFLEET_PROMETHEUS_IMAGE=prometheus_image)
    compose = [compose_bin, "-f", str(COMPOSE / "fleet.yaml"), "-p", f"jffleet{port}"]
    up = subprocess.run([*compose, "up", "-d", "backend"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stderr
        # as compose/fleet.yaml says: Prometheus gets a `read` token created once the control plane runs
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}"), 60, interval=0.5, what="the control plane")
        created = httpx.post(f"http://127.0.0.1:{port}/api/v1/tokens", json={"name": "prometheus", "scope": "read"},
                             headers={"Authorization": f"Bearer {env['JETFLEET_ADMIN_TOKEN']}"}, timeout=10)
        env["JETFLEET_READ_TOKEN"] = created.json()["token"]
        up = subprocess.run([*compose, "up", "-d", "prometheus"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr
        yield compose, {**env, "BACKEND_URL": f"http://127.0.0.1:{port}",
                        "PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}"}
    finally:
        logs = subprocess.run([*compose, "logs", "--no-color"], env=env, capture_output=True, text=True, timeout=60)
        print(logs.stdout[-4000:])
        subprocess.run([*compose, "down", "--volumes", "--timeout", "10"], env=env, capture_output=True, timeout=120)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.docker
@pytest.mark.slow
def test_compose_fleet_serves_the_fleet_keeps_its_data_and_prometheus_watches_it(
        fleet_stack: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    compose, env = fleet_stack
    backend, prometheus = env["BACKEND_URL"], env["PROMETHEUS_URL"]
    wait_until(lambda: _healthy(backend), 60, interval=0.5, what="the control plane container")
    agent = start_agent(agent_config(tmp_path, backend, "jetson-compose", heartbeat_interval=1))
    try:
        up = wait_until(lambda: query(prometheus, 'up{job="jetfleet-agent"} == 1'), 90, interval=1,
                        what="Prometheus (compose) scraping the agent it discovered from the control plane")
        assert isinstance(up, list) and up[0]["metric"]["device_name"] == "jetson-compose"
        wait_until(lambda: query(prometheus, 'jetfleet_backend_devices{status="online"} >= 1'), 60, interval=1,
                   what="the control plane's own metrics")
        admin = {"Authorization": f"Bearer {env['JETFLEET_ADMIN_TOKEN']}"}
        wait_until(lambda: "manifest" in (tmp_path / "jetson-compose/agent.log").read_text(), 30, interval=0.5,
                   what="the agent accepting a signed manifest")

        restart = subprocess.run([*compose, "restart", "backend"], env=env, capture_output=True, text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr
        wait_until(lambda: _healthy(backend), 60, interval=0.5, what="the restarted control plane")
        record = httpx.get(f"{backend}/api/v1/edge-devices/jetson-compose", headers=admin, timeout=10).json()
        assert record["device_name"] == "jetson-compose"  # the registry survived in the jetfleet-data volume
        wait_until(lambda: httpx.get(f"{backend}/api/v1/edge-devices/jetson-compose", headers=admin,
                                     timeout=10).json()["status"] == "online", 30, interval=0.5,
                   what="the agent heartbeating again with its token (the same database and signing key)")
        time.sleep(3)  # a few heartbeats with manifests signed after the restart
        assert "refusing the control plane's manifest" not in (tmp_path / "jetson-compose/agent.log").read_text()
    finally:
        agent.stop()

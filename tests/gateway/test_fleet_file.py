"""Fleet file validation: every mistake is refused with the key and the file, before Traefik starts."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetfleet.errors import ConfigError
from jetfleet.gateway.fleet import load_fleet, load_settings, parse_dynamic_settings
from tests.support.processes import jetfleet_cmd, subprocess_env

GOOD_NODES = [{"name": "jetson-a", "url": "http://127.0.0.1:8801", "roles": ["voice"]},
              {"name": "jetson-b", "url": "http://127.0.0.1:8802", "roles": ["voice", "yolov8n"], "backup": True}]


def _write(tmp_path: Path, data: Any, name: str = "fleet.yml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _error(tmp_path: Path, data: Any) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    message = str(caught.value)
    assert str(path) in message
    return message


def test_the_issue_example_loads_with_defaults(tmp_path: Path) -> None:
    fleet = load_fleet(_write(tmp_path, {"gateway": {"port": 8889, "strategy": "leasttime", "health_interval": "1s"},
                                         "nodes": GOOD_NODES}))
    assert fleet.gateway.port == 8889 and fleet.gateway.strategy == "leasttime"
    assert fleet.gateway.health_interval == 1.0 and fleet.gateway.effective_unhealthy_interval == 0.5
    assert fleet.gateway.retry_in_flight == ()  # connection errors only, unless opted in
    assert [n.name for n in fleet.nodes] == ["jetson-a", "jetson-b"]
    assert fleet.roles() == ["voice", "yolov8n"]


@pytest.mark.parametrize(("gateway", "nodes", "expected"), [
    ({"strategy": "roundrobin"}, GOOD_NODES, "key 'gateway.strategy'"),
    ({"strategy": "random"}, GOOD_NODES, "'wrr', 'p2c', 'leasttime' or 'hrw'"),
    ({}, [GOOD_NODES[0], {**GOOD_NODES[1], "name": "jetson-a"}], "duplicate node names: ['jetson-a']"),
    ({}, [{**GOOD_NODES[0], "url": "127.0.0.1:8801"}], "key 'nodes[0].url'"),
    ({}, [GOOD_NODES[0], {**GOOD_NODES[1], "url": "http://127.0.0.1:8802/api"}], "without path"),
    ({}, [{**GOOD_NODES[0], "url": "http://127.0.0.1:99999"}], "bad port"),
    ({}, [{**GOOD_NODES[0], "url": "ftp://jetson-a"}], "http:// or https://"),
    ({}, [{**GOOD_NODES[0], "roles": []}], "key 'nodes[0].roles'"),
    ({}, [GOOD_NODES[0], {**GOOD_NODES[1], "url": GOOD_NODES[0]["url"]}], "same URL on several nodes"),
    ({}, [{**GOOD_NODES[0], "roles": ["voice", "bad model!"]}], "key 'nodes[0].roles[1]'"),
    ({}, [{**GOOD_NODES[0], "urls": {"vision": "http://127.0.0.1:1"}}], "roles it does not have: ['vision']"),
    ({"health_interval": "onesecond"}, GOOD_NODES, "key 'gateway.health_interval'"),
    ({"health_interval": "10s"}, GOOD_NODES, "less than or equal to 5"),
    ({"health_timeout": "2s"}, GOOD_NODES, "health_timeout must not be longer than health_interval"),
    ({"strategy": "hrw", "sticky": True}, GOOD_NODES, "silently ignores a sticky cookie with strategy hrw"),
    ({"retry_in_flight": ["robot"]}, GOOD_NODES, "key 'gateway.retry_in_flight[0]'"),
    ({"port": 8080}, GOOD_NODES, "must differ"),
])
def test_invalid_fleet_is_refused_naming_the_key(tmp_path: Path, gateway: dict[str, Any],
                                                 nodes: list[dict[str, Any]], expected: str) -> None:
    assert expected in _error(tmp_path, {"gateway": gateway, "nodes": nodes})


@pytest.mark.parametrize(("data", "key"), [
    ({"nodes": GOOD_NODES, "gateways": {}}, "key 'gateways'"),
    ({"gateway": {"intervall": "1s"}, "nodes": GOOD_NODES}, "key 'gateway.intervall'"),
    ({"nodes": [{**GOOD_NODES[0], "role": ["voice"]}]}, "key 'nodes[0].role'"),
])
def test_unknown_keys_are_refused_listing_the_valid_ones(tmp_path: Path, data: dict[str, Any], key: str) -> None:
    message = _error(tmp_path, data)
    assert key in message and "unknown key; valid keys are:" in message


def test_empty_fleet_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    assert "the fleet has no nodes" in _error(tmp_path, {"gateway": {}})
    assert "not valid YAML at line 3 column 8" in _error(tmp_path, "nodes:\n  - name: [a\n    url: x\n")
    assert "top level must be a mapping" in _error(tmp_path, "- just a list\n")
    with pytest.raises(ConfigError, match="fleet file not found"):
        load_fleet(tmp_path / "missing.yml")


def test_settings_file_for_the_registry_must_not_list_nodes(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, {"gateway": {"strategy": "p2c"}})).strategy == "p2c"
    with pytest.raises(ConfigError, match="must not list nodes"):
        load_settings(_write(tmp_path, {"nodes": GOOD_NODES}))


def test_query_settings_accept_only_routing_keys() -> None:
    settings = parse_dynamic_settings({"strategy": "wrr", "retry_in_flight": "voice,models",
                                       "health_interval": "500ms"}, source="query")
    assert (settings.strategy, settings.retry_in_flight, settings.health_interval) == ("wrr", ("voice", "models"), 0.5)
    with pytest.raises(ConfigError, match="key 'port'"):
        parse_dynamic_settings({"port": "80"}, source="query")
    with pytest.raises(ConfigError, match="key 'strategy'"):
        parse_dynamic_settings({"strategy": "fastest"}, source="query")


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(jetfleet_cmd("gateway", *args), capture_output=True, text=True, env=subprocess_env(),
                          timeout=timeout)


def test_cli_render_and_run_fail_before_traefik_starts(tmp_path: Path) -> None:
    bad = _write(tmp_path, {"gateway": {"strategy": "roundrobin"}, "nodes": GOOD_NODES})
    render = _cli("render", "--fleet", str(bad))
    assert render.returncode == 2
    assert f"error: key 'gateway.strategy' in {bad}: Input should be 'wrr'" in render.stderr

    work = tmp_path / "work"
    began = time.monotonic()
    run = _cli("run", "--fleet", str(bad), "--work-dir", str(work))
    assert run.returncode == 2 and "key 'gateway.strategy'" in run.stderr
    assert time.monotonic() - began < 30
    assert "traefik started" not in run.stderr and not (work / "dynamic.yml").exists()

    both = _cli("render", "--fleet", str(bad), "--from-backend", "http://127.0.0.1:1")
    assert both.returncode == 2 and "exactly one of --fleet FILE or --from-backend URL" in both.stderr


def test_cli_render_writes_validated_files(tmp_path: Path) -> None:
    good = _write(tmp_path, {"gateway": {"strategy": "p2c"}, "nodes": GOOD_NODES})
    out = tmp_path / "out"
    result = _cli("render", "--fleet", str(good), "--out", str(out))
    assert result.returncode == 0, result.stderr
    dynamic = yaml.safe_load((out / "dynamic.yml").read_text())
    assert dynamic["http"]["services"]["voice"]["failover"]["fallback"] == "voice-backup"
    flags = (out / "traefik.flags").read_text().splitlines()
    assert f"--providers.file.filename={out.resolve() / 'dynamic.yml'}" in flags
    printed = _cli("render", "--fleet", str(good))
    assert printed.returncode == 0 and "# --global.checkNewVersion=false" in printed.stdout

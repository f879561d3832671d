"""The agent's config file: defaults, environment overrides, and one clear error per bad file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from jetfleet.agent.config import config_keys, load_config
from jetfleet.errors import ConfigError
from tests.support.processes import REPO_ROOT, jetfleet_cmd, subprocess_env

TEMPLATE = REPO_ROOT / "config/config.json.template"


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_seed_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"backend_url": "http://10.0.0.5:8000/"}), {})
    assert config.backend_url == "http://10.0.0.5:8000"
    assert config.api_key is None
    assert config.heartbeat_interval == 30
    assert config.device_type == "jetson_orin"
    assert config.location == "Unknown"
    assert config.models_dir == Path("/opt/ml-platform/models")
    assert config.auto_update is True
    assert config.log_level == "INFO"
    assert config.state_dir == Path("/var/lib/jetson-client")
    assert config.device_id is None
    assert config.metrics_port == 9101
    assert config.device_name  # the hostname


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"backend_url": "http://a:1", "heartbeat_interval": 30})
    env = {"JETFLEET_HEARTBEAT_INTERVAL": "5", "JETFLEET_AUTO_UPDATE": "false", "JETFLEET_DEVICE_ID": "jetson-a",
           "JETFLEET_SERVICES": '[{"role": "voice", "url": "http://127.0.0.1:8801"}]', "JETFLEET_API_KEY": "null"}
    config = load_config(path, env)
    assert config.heartbeat_interval == 5
    assert config.auto_update is False
    assert config.device_id == "jetson-a"
    assert config.services[0].role == "voice"


def test_a_service_can_be_marked_backup_with_a_weight(tmp_path: Path) -> None:
    service = {"role": "voice", "url": "http://10.0.0.22:8888", "backup": True, "weight": 3}
    config = load_config(write(tmp_path, {"backend_url": "http://a:1", "services": [service]}), {})
    assert (config.services[0].backup, config.services[0].weight) == (True, 3)


@pytest.mark.parametrize(("content", "env", "key", "message"), [
    ("{not json", {}, None, "not valid JSON"),
    ("[1, 2]", {}, None, "top level must be a JSON object"),
    ({}, {}, "backend_url", "required key is missing"),
    ({"backend_url": "ftp://x"}, {}, "backend_url", "http:// or https:// URL"),
    ({"backend_url": "http://a:1", "heartbeat_intervall": 5}, {}, "heartbeat_intervall", "unknown key"),
    ({"backend_url": "http://a:1", "heartbeat_interval": "30"}, {}, "heartbeat_interval", "valid number"),
    ({"backend_url": "http://a:1", "auto_update": "yes"}, {}, "auto_update", "valid boolean"),
    ({"backend_url": "http://a:1", "metrics_port": 70000}, {}, "metrics_port", "less than or equal"),
    ({"backend_url": "http://a:1", "log_level": "LOUD"}, {}, "log_level", "DEBUG"),
    ({"backend_url": "http://a:1", "device_id": "bad id"}, {}, "device_id", "pattern"),
    ({"backend_url": "http://a:1"}, {"JETFLEET_METRICS_PORT": "abc"}, "metrics_port", "JETFLEET_METRICS_PORT"),
    ({"backend_url": "http://a:1", "services": [{"role": "voice", "url": "http://a:2", "weight": 0}]}, {},
     "services.0.weight", "greater than or equal to 1"),
    ({"backend_url": "http://a:1", "services": [{"role": "voice", "url": "http://a:2", "backup": "maybe"}]}, {},
     "services.0.backup", "valid boolean"),
])
def test_bad_config_names_key_and_file(tmp_path: Path, content: object, env: dict[str, str], key: str | None,
                                       message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as error:
        load_config(path, env)
    text = str(error.value)
    assert message in text
    if key:
        assert f"key '{key}'" in text
    assert str(path) in text or "JETFLEET_" in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.json", {})


def test_template_loads_and_documents_every_key() -> None:
    config = load_config(TEMPLATE, {})
    assert config.backend_url.startswith("http")
    documented = {key.removeprefix("// ") for key in json.loads(TEMPLATE.read_text()) if key.startswith("// ")}
    assert set(config_keys()) <= documented, set(config_keys()) - documented


def test_agent_refuses_a_bad_config_before_doing_anything(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    path = write(tmp_path, {"backend_url": "http://127.0.0.1:9", "state_dir": str(state_dir), "metrics_port": "x"})
    result = subprocess.run(jetfleet_cmd("agent", "run", "--config", str(path)), capture_output=True, text=True,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: key 'metrics_port' in {path}: Input should be a valid integer"]
    assert not state_dir.exists()  # nothing half-started

"""The images a plain `python -m images.build TARGET` tags are the ones their consumers run by default, so the
documented build-then-run steps need no --tag and no override."""

from __future__ import annotations

import json

import yaml

from images.build import TARGETS, default_tag
from jetfleet.agent.config import AgentConfig
from tests.support.processes import REPO_ROOT

CONSUMERS = {  # compose file, service -> the target whose image it runs
    ("fleet.yaml", "backend"): "control-plane",
    ("gateway.yaml", "gateway-health"): "gateway",
    ("node.yaml", "voice"): "voice-go2",
}


def compose_default_image(file: str, service: str) -> str:
    image: str = yaml.safe_load((REPO_ROOT / "compose" / file).read_text())["services"][service]["image"]
    assert image.startswith("${") and ":-" in image, f"{file} {service}: {image} is not overridable"
    return image.split(":-", 1)[1].removesuffix("}")


def test_compose_files_run_the_default_build_of_their_target() -> None:
    for (file, service), target in CONSUMERS.items():
        assert target in TARGETS
        assert compose_default_image(file, service) == default_tag(target), (file, service)


def test_the_agent_and_its_config_template_run_the_default_model_server_build() -> None:
    assert AgentConfig.model_fields["model_image"].default == default_tag("model-server")
    template = json.loads((REPO_ROOT / "config" / "config.json.template").read_text())
    assert template["model_image"] == default_tag("model-server")

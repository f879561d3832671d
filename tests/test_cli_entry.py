"""The ``jetfleet`` entry point: every role's commands are reachable, whichever command loads them."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.processes import jetfleet_cmd, subprocess_env


def _help(*args: str) -> str:
    done = subprocess.run(jetfleet_cmd(*args, "--help"), capture_output=True, text=True, timeout=60,
                          env=subprocess_env(COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_top_level_help_lists_every_role() -> None:
    text = _help()
    for command in ("agent", "serve-model", "backend", "fleet", "models", "voice", "gateway", "bench"):
        assert f"│ {command} " in text


def test_bench_lists_the_benchmarks_of_every_role() -> None:
    text = _help("bench")
    for bench in ("agent", "backend", "model-server", "ota", "voice", "gateway"):
        assert f"│ {bench} " in text


@pytest.mark.parametrize(("command", "subcommand"), [("agent", "run"), ("fleet", "status"), ("models", "push"),
                                                     ("voice", "serve"), ("gateway", "run"), ("backend", "serve")])
def test_each_role_command_loads_on_its_own(command: str, subcommand: str) -> None:
    assert "Usage:" in _help(command, subcommand)

"""OTA demo: push a small model, deploy it by tag to two local agents, infer, move the tag, show the swap.

Standalone (starts and stops its own control plane and two agents, process executor, on loopback)::

    python -m jetfleet.bench.demo_ota [--work DIR]

or from the main demo: merge :func:`ota_agent_config` into each agent's config and call :func:`run`
with a function that runs ``jetfleet`` CLI commands against the control plane. Everything shown is a
``jetfleet models ...`` command an operator would type.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from jetfleet.bench.fleet import LocalFleet, ota_agent_config
from jetfleet.errors import PermanentError

ROOT = Path.cwd()  # scripts/demo.sh runs from the checkout
ADMIN_TOKEN = "demo-admin-token"
MODEL = "demo-dense"
Cli = Callable[..., str]


def say(text: str) -> None:
    from rich.console import Console

    Console().rule(text)


def run(cli: Cli, work: Path, devices: list[str]) -> None:
    """The OTA part of the demo, against a running control plane and agents ``devices``."""
    from jetfleet.bench.testmodels import write_dense_onnx

    say("5. push a small ONNX model as version 1 of 'demo-dense', tagged 'prod'")
    v1 = write_dense_onnx(work / "dense-v1.onnx", features=4, outputs=3, seed=1)
    print(cli("models", "push", str(v1), "--name", MODEL, "--tag", "prod"), end="")
    say(f"6. deploy demo-dense:prod to {', '.join(devices)}")
    print(cli("models", "deploy", f"{MODEL}:prod", *[arg for d in devices for arg in ("--device", d)]), end="")
    print(cli("models", "wait", MODEL, "--version", "1", "--timeout", "120"), end="")
    print(cli("models", "status", MODEL), end="")
    status = json.loads(cli("models", "status", MODEL, "--json"))
    endpoint = status["devices"][0]["endpoint"]
    say(f"7. inference through {devices[0]}'s stable endpoint {endpoint}")
    print(cli("models", "infer", MODEL, "--url", endpoint, "--data", "[[1, 2, 3, 4]]"), end="")
    say("8. push version 2 and move the tag: both devices swap (blue/green, no failed requests)")
    v2 = write_dense_onnx(work / "dense-v2.onnx", features=4, outputs=3, seed=2)
    print(cli("models", "push", str(v2), "--name", MODEL), end="")
    print(cli("models", "tag", f"{MODEL}:prod", "2"), end="")
    print(cli("models", "wait", MODEL, "--version", "2", "--timeout", "120"), end="")
    print(cli("models", "status", MODEL), end="")
    print(cli("models", "infer", MODEL, "--url", endpoint, "--data", "[[1, 2, 3, 4]]"), end="")


def standalone(work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    fleet = LocalFleet(work, ADMIN_TOKEN)
    devices = ["jetson-a", "jetson-b"]
    try:
        fleet.start_backend()
        for name in devices:
            fleet.start_agent(name, **ota_agent_config(work / name))
        fleet.wait_registered(devices)
        run(fleet.cli, work, devices)
        say("demo finished: stopping the fleet")
        return 0
    except (RuntimeError, KeyboardInterrupt, PermanentError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        fleet.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / ".demo" / "ota", help="working directory")
    raise SystemExit(standalone(parser.parse_args().work))

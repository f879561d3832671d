"""A fake Unitree Go2 sport service for tests: a real DDS peer answering ``rt/api/sport/request``.

Built on the SDK's own RPC ``Server`` class with the SDK's types, so the real ``SportClient`` in the voice
server sends real DDS requests to it. Every call is appended as one JSON line to ``--log``:
``{"t", "api_id", "api", "param", "code", "posture", "vel"}``.

    python -u tests/voice/fake_go2_sport.py lo --domain 42 --log calls.jsonl [--fail HELLO=4206]
        [--delay STRETCH=1.5]

Prints ``[fake-go2] ready on <iface>`` when serving; runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from unitree_sdk2py.core.channel import ChannelFactoryInitialize
from unitree_sdk2py.go2.sport import sport_api
from unitree_sdk2py.rpc.server import Server

API_NAMES = {value: name.removeprefix("SPORT_API_ID_") for name, value in vars(sport_api).items()
             if name.startswith("SPORT_API_ID_")}
POSTURES = {"STANDUP": "standing", "BALANCESTAND": "standing", "RECOVERYSTAND": "standing", "RISESIT": "standing",
            "STANDDOWN": "lying", "SIT": "sitting", "DAMP": "damp"}
MOVE_HOLD_S = 1.0  # like the robot: a Move is held for 1 s


class FakeSport(Server):  # type: ignore[misc]
    def __init__(self, log: Path, fail: dict[str, int], delay: dict[str, float]) -> None:
        super().__init__(sport_api.SPORT_SERVICE_NAME)
        self._log = log
        self._fail = fail
        self._delay = delay
        self._lock = threading.Lock()
        self.posture = "lying"
        self.velocity = (0.0, 0.0, 0.0)
        self._moved_at = 0.0

    def Init(self) -> None:  # the SDK's naming
        self._SetApiVersion(sport_api.SPORT_API_VERSION)
        for api_id, name in API_NAMES.items():
            self._RegistHandler(api_id, self._handler(api_id, name), False)

    def _handler(self, api_id: int, name: str) -> Any:
        def handle(parameter: str) -> tuple[int, str]:
            time.sleep(self._delay.get(name, 0.0))
            code = self._fail.get(name, 0)
            with self._lock:
                if code == 0:
                    self._apply(name, json.loads(parameter or "{}"))
                self._record(api_id, name, parameter, code)
            return code, '{"data": true}' if name == "AUTORECOVERY_GET" else ""

        return handle

    def _apply(self, name: str, param: dict[str, Any]) -> None:
        if name in POSTURES:
            self.posture = POSTURES[name]
        if name in ("STANDDOWN", "SIT", "DAMP", "STOPMOVE"):
            self.velocity = (0.0, 0.0, 0.0)
        if name == "MOVE":
            self.velocity = (float(param["x"]), float(param["y"]), float(param["z"]))
            self._moved_at = time.monotonic()

    def _record(self, api_id: int, name: str, parameter: str, code: int) -> None:
        if time.monotonic() - self._moved_at > MOVE_HOLD_S:
            self.velocity = (0.0, 0.0, 0.0)
        entry = {"t": time.time(), "api_id": api_id, "api": name, "param": json.loads(parameter or "{}"),
                 "code": code, "posture": self.posture, "vel": list(self.velocity)}
        with self._log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")


def _pairs(items: list[str], kind: type) -> dict[str, Any]:
    return {name.upper(): kind(value) for name, value in (item.split("=", 1) for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("interface")
    parser.add_argument("--domain", type=int, default=0)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--fail", action="append", default=[], help="NAME=CODE, e.g. HELLO=4206")
    parser.add_argument("--delay", action="append", default=[], help="NAME=SECONDS before answering")
    args = parser.parse_args()

    ChannelFactoryInitialize(args.domain, args.interface)
    server = FakeSport(args.log, _pairs(args.fail, int), _pairs(args.delay, float))
    server.Init()
    server.Start(False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"[fake-go2] ready on {args.interface} (domain {args.domain})", flush=True)
    stop.wait()


if __name__ == "__main__":
    main()

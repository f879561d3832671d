"""Return codes of the Unitree SDK RPC layer and the Go2 sport service, in words."""

from __future__ import annotations

OK = 0
SEND_FAILED = 3102
NOT_REGISTERED = 3103
TIMEOUT = 3104

# Codes that mean nobody answered: the robot is not there (or not on this interface / DDS domain).
NO_ANSWER = frozenset({SEND_FAILED, TIMEOUT})

MEANINGS = {
    0: "ok",
    3001: "unknown client error",
    3102: "no robot answered: the request could not be sent (is a Go2 on --network-interface and DDS domain?)",
    3103: "API not registered in the client",
    3104: "the robot did not answer before the timeout (the action may still run)",
    3105: "API id mismatch in the answer",
    3106: "malformed answer",
    3107: "lease invalid",
    3201: "the robot could not send its answer",
    3202: "internal error in the robot's service",
    3203: "API not implemented by the robot",
    3204: "bad parameter",
    3205: "lease denied",
    3206: "lease does not exist",
    3207: "lease exists",
    4101: "too many trajectory points",
    4201: "the action did not complete in time",
    4202: "the sport state machine is not initialised",
    4205: "the sport state machine is not initialised",
    4206: "the posture does not allow this action (e.g. wave while lying)",
}


def describe(code: int) -> str:
    return MEANINGS.get(code, f"robot error {code}")

"""A network namespace the test creates, joined to this one by a veth pair: a node that can be cut off.

The control plane listens on the host end's address (a /30 of 10.213.0.0/16 that only this link uses), the
node's processes run inside the namespace (``ip netns exec``) and reach it through the link; taking the node's
end down partitions the node (the host end keeps its address, so the test still reaches the control plane),
bringing it up heals it. Everything is removed at the end, by name.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.system import require_binary, unavailable


@dataclass(frozen=True)
class NodeNetwork:
    namespace: str
    host_interface: str
    node_interface: str
    host_ip: str  # this side of the link: where the node reaches the control plane
    node_ip: str

    def inside(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the node's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def partition(self) -> None:
        _ip("-n", self.namespace, "link", "set", self.node_interface, "down")

    def heal(self) -> None:
        _ip("-n", self.namespace, "link", "set", self.node_interface, "up")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def node_network() -> Iterator[NodeNetwork]:
    if os.geteuid() != 0:
        unavailable("a network namespace needs root")
    require_binary("ip", ["iproute2"])
    tag = secrets.token_hex(3)
    third, fourth = secrets.randbelow(256), 4 * secrets.randbelow(64)
    net = NodeNetwork(f"jfnode{tag}", f"jfh{tag}", f"jfn{tag}", f"10.213.{third}.{fourth + 1}",
                      f"10.213.{third}.{fourth + 2}")
    peer = net.node_interface
    _ip("netns", "add", net.namespace)
    try:
        _ip("link", "add", net.host_interface, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", net.namespace)
        _ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_interface)
        _ip("link", "set", net.host_interface, "up")
        _ip("-n", net.namespace, "addr", "add", f"{net.node_ip}/30", "dev", peer)
        _ip("-n", net.namespace, "link", "set", peer, "up")
        _ip("-n", net.namespace, "link", "set", "lo", "up")
        yield net
    finally:
        subprocess.run(["ip", "link", "del", net.host_interface], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", net.namespace], capture_output=True, timeout=30)

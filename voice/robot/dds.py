"""The Unitree SDK and CycloneDDS at the edge: import with a clear install message, pre-start checks,
and the one process-wide DDS participant.

A real Go2 runs CycloneDDS 0.10.2. An 11.x participant on the robot network did not discover 0.10.2
peers and, once forced to, crashed them (docs/voice.md): 11.x is refused on anything but loopback
unless ``--allow-dds-mismatch`` is given.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import logging
from types import SimpleNamespace

import psutil

from jetfleet.errors import ConfigError
from jetfleet.voice.errors import RobotSdkMissing
from jetfleet.voice.settings import RobotSettings

_LOG = logging.getLogger(__name__)

INSTALL_HINT = (
    "--robot go2 needs the Unitree SDK for Python and CycloneDDS. Install them with"
    " the go2 extra: pip install '.[go2]' in the jetfleet checkout (unitree-sdk2py-dimos==1.0.3 + cyclonedds),"
    " or without opencv:"
    " pip install --no-deps unitree-sdk2py-dimos==1.0.3 && pip install cyclonedds. A real Go2 runs"
    " CycloneDDS 0.10.2: on the robot network build cyclonedds 0.10.2 from source (docs/voice.md)."
    " Use --robot none for a dry run."
)
ROBOT_DDS_SERIES = "0.10"


def import_sdk() -> SimpleNamespace:
    try:
        from unitree_sdk2py.core.channel import ChannelFactoryInitialize
        from unitree_sdk2py.go2.sport.sport_client import SportClient
    except ImportError as exc:
        raise RobotSdkMissing(f"{INSTALL_HINT} ({exc})", key="--robot") from exc
    return SimpleNamespace(ChannelFactoryInitialize=ChannelFactoryInitialize, SportClient=SportClient)


def installed_cyclonedds() -> str | None:
    try:
        return importlib.metadata.version("cyclonedds")
    except importlib.metadata.PackageNotFoundError:
        return None


def dds_version_problem(version: str | None, *, loopback: bool, allowed: bool) -> str | None:
    """Why this cyclonedds must not talk to a Go2 (None when it may)."""
    if version is None:
        return f"cyclonedds is not installed. {INSTALL_HINT}"
    if loopback or allowed or version.startswith(ROBOT_DDS_SERIES + "."):
        return None
    return (f"cyclonedds {version} is installed, but a Go2 runs CycloneDDS 0.10.2 and an 11.x peer on its"
            " network crashed 0.10.2 processes in tests. Install cyclonedds 0.10.2 built from source"
            " (docs/voice.md), or pass --allow-dds-mismatch if you know your robot copes")


def interface_addresses(interface: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 addresses of ``interface``; ConfigError listing the interfaces if it does not exist."""
    interfaces = psutil.net_if_addrs()
    if interface not in interfaces:
        raise ConfigError(f"no network interface '{interface}' here (have: {', '.join(sorted(interfaces))})",
                          key="--network-interface")
    return [ipaddress.IPv4Interface(f"{a.address}/{a.netmask}") for a in interfaces[interface]
            if a.family.name == "AF_INET" and a.netmask]


def preflight(settings: RobotSettings) -> list[str]:
    """Checks before start-up: SDK importable, interface present, DDS version safe. Returns warnings."""
    if settings.kind != "go2":
        return []
    import_sdk()
    addresses = interface_addresses(settings.network_interface)
    loopback = any(a.ip.is_loopback for a in addresses)
    if problem := dds_version_problem(installed_cyclonedds(), loopback=loopback,
                                      allowed=settings.allow_dds_mismatch):
        raise ConfigError(problem, key="--network-interface")
    robot = ipaddress.IPv4Address(settings.robot_ip)
    if not loopback and not any(robot in a.network for a in addresses):
        return [f"{settings.network_interface} has no address in the robot's subnet ({settings.robot_ip});"
                " the Go2 is usually reached from 192.168.123.0/24"]
    return []


def start_dds(sdk: SimpleNamespace, settings: RobotSettings) -> None:
    """The SDK's process-wide DDS participant on the named interface (never auto-detected)."""
    try:
        sdk.ChannelFactoryInitialize(settings.dds_domain, settings.network_interface)
    except Exception as exc:  # the SDK raises a bare Exception("channel factory init error.")
        raise ConfigError(f"CycloneDDS could not start on '{settings.network_interface}' (domain"
                          f" {settings.dds_domain}): {exc}", key="--network-interface") from exc

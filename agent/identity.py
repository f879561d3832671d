"""The device's identity: an id derived from the primary MAC, and the token, persisted in the state dir."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from jetfleet.errors import ConfigError, PermanentError
from jetfleet.files import write_atomic

IDENTITY_FILE = "identity.json"
_VIRTUAL_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "cni", "flannel", "tun", "tap", "wg", "zt", "l4tbr")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Identity:
    device_id: str
    device_token: str | None = None
    backend_url: str | None = None  # the control plane that issued the token

    def token_for(self, backend_url: str) -> str | None:
        return self.device_token if self.backend_url == backend_url else None


class IdentityStore:
    """``state_dir/identity.json``, mode 0600, replaced atomically."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / IDENTITY_FILE

    def load(self) -> Identity | None:
        try:
            data = json.loads(self.path.read_text())
            return Identity(**{k: data.get(k) for k in ("device_id", "device_token", "backend_url")})
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"unreadable identity file {self.path}: {exc}; fix or delete it",
                              key="state_dir") from exc

    def save(self, identity: Identity) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(asdict(identity)))
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc.strerror}", key="state_dir") from exc


def resolve_device_id(configured: str | None, stored: Identity | None, host_root: Path) -> str:
    """The configured id wins; then the persisted one (stable even if NICs change); then the MAC."""
    if configured:
        return configured
    if stored is not None:
        return stored.device_id
    mac = primary_mac(host_root)
    if mac is None:
        raise PermanentError("cannot derive a device id: no network interface with a MAC address was found "
                             "under /sys/class/net; set 'device_id' in the config")
    return device_id_from_mac(mac)


def device_id_from_mac(mac: str) -> str:
    return "jf-" + mac.replace(":", "").lower()


def primary_mac(host_root: Path) -> str | None:
    """MAC of the default-route interface if physical, else of the first physical one, else any real one."""
    net = host_root / "sys/class/net"
    candidates = [i for i in sorted(_listdir(net)) if not i.startswith(_VIRTUAL_PREFIXES)]
    physical = [i for i in candidates if (net / i / "device").exists()]
    default = _default_route_interface(host_root)
    for iface in ([default] if default in physical else []) + physical + candidates:
        mac = _read_mac(net / iface / "address")
        if mac:
            return mac
    return None


def _default_route_interface(host_root: Path) -> str | None:
    try:
        lines = (host_root / "proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 1 and fields[1] == "00000000":
            return fields[0]
    return None


def _read_mac(path: Path) -> str | None:
    try:
        mac = path.read_text().strip().lower()
    except OSError:
        return None
    return mac if _MAC.match(mac) and mac != "00:00:00:00:00:00" else None


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []

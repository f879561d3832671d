"""Device identity: MAC-derived id, persistence with mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from jetfleet.agent.identity import Identity, IdentityStore, primary_mac, resolve_device_id
from jetfleet.errors import ConfigError, PermanentError

ROUTE_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"


def fake_host(root: Path, interfaces: dict[str, str], *, physical: set[str], default: str | None) -> Path:
    for name, mac in interfaces.items():
        iface = root / "sys/class/net" / name
        iface.mkdir(parents=True)
        (iface / "address").write_text(mac + "\n")
        if name in physical:
            (iface / "device").mkdir()
    routes = ROUTE_HEADER
    if default:
        routes += f"{default}\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    (root / "proc/net").mkdir(parents=True)
    (root / "proc/net/route").write_text(routes)
    return root


def test_default_route_interface_wins(tmp_path: Path) -> None:
    root = fake_host(tmp_path, {"eth0": "48:b0:2d:00:00:01", "wlan0": "48:b0:2d:00:00:02",
                                "docker0": "02:42:ac:11:00:01", "lo": "00:00:00:00:00:00"},
                     physical={"eth0", "wlan0"}, default="wlan0")
    assert primary_mac(root) == "48:b0:2d:00:00:02"
    assert resolve_device_id(None, None, root) == "jf-48b02d000002"


def test_virtual_interfaces_are_skipped_when_the_default_route_is_virtual(tmp_path: Path) -> None:
    root = fake_host(tmp_path, {"docker0": "02:42:ac:11:00:01", "enP8p1s0": "48:b0:2d:aa:bb:cc",
                                "veth12": "aa:aa:aa:aa:aa:aa"}, physical={"enP8p1s0"}, default="docker0")
    assert primary_mac(root) == "48:b0:2d:aa:bb:cc"


def test_configured_and_stored_ids_take_precedence(tmp_path: Path) -> None:
    root = fake_host(tmp_path, {"eth0": "48:b0:2d:00:00:01"}, physical={"eth0"}, default="eth0")
    assert resolve_device_id("jetson-a", Identity("jf-old"), root) == "jetson-a"
    assert resolve_device_id(None, Identity("jf-old"), root) == "jf-old"


def test_no_mac_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="set 'device_id' in the config"):
        resolve_device_id(None, None, tmp_path)


def test_identity_is_saved_atomically_with_mode_0600(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path / "state")
    store.save(Identity("jf-1", "secret-token", "http://cp:8000"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    loaded = store.load()
    assert loaded == Identity("jf-1", "secret-token", "http://cp:8000")
    assert loaded.token_for("http://cp:8000") == "secret-token"
    assert loaded.token_for("http://other:8000") is None
    assert list(store.path.parent.iterdir()) == [store.path]  # no temp files left


def test_corrupt_identity_file_names_the_file(tmp_path: Path) -> None:
    store = IdentityStore(tmp_path)
    store.path.write_text("{broken")
    with pytest.raises(ConfigError, match=r"identity\.json"):
        store.load()

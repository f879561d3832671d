"""Small pure pieces: durations, the registry's view of devices."""

from __future__ import annotations

import pytest

from jetfleet.durations import go_duration, parse_duration
from jetfleet.gateway.fleet import GatewaySettings
from jetfleet.gateway.live_fleet import DeviceView, fleet_from_devices


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5),
                                               (2, 2.0), (0.25, 0.25)])
def test_durations_read_go_syntax_and_numbers(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["onesecond", "1", "1 s", "", "-1s", True, None, "1sec"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_durations_render_as_whole_milliseconds() -> None:
    assert [go_duration(s) for s in (1.0, 0.5, 1.5, 30.0, 0.0004)] == ["1s", "500ms", "1500ms", "30s", "0s"]


def test_registry_skips_bad_reports_without_breaking_the_rest() -> None:
    devices = [
        DeviceView("jetson-a", services=[{"role": "voice", "url": "http://10.0.0.1:8888/", "healthy": True},
                                         {"role": "metrics", "url": "http://10.0.0.1:9101", "healthy": True}],
                   models=[{"name": "bad name!", "serving_version": 1, "endpoint": "http://10.0.0.1:9000"},
                           {"name": "yolov8n", "serving_version": 2, "endpoint": "http://10.0.0.1:9000/v2"}]),
        DeviceView("jetson-b", services=[{"role": "voice", "url": "not a url", "healthy": True}]),
        DeviceView("jetson-c", services=[{"role": "voice", "url": "http://10.0.0.1:8888", "healthy": True}]),
        DeviceView("jetson-d", services=[{"role": "vision", "url": "http://10.0.0.4:8000", "healthy": None}]),
    ]
    live = fleet_from_devices(devices, GatewaySettings())
    assert [(n.name, n.roles, n.url, n.urls) for n in live.fleet.nodes] == [
        ("jetson-a", ("voice", "yolov8n"), "http://10.0.0.1:8888", {"yolov8n": "http://10.0.0.1:9000"})]
    reasons = "\n".join(live.skipped)
    assert "device jetson-b: not routing voice: must be an http:// or https:// URL" in reasons
    assert "device jetson-a: not routing bad name!: String should match pattern" in reasons
    assert "device jetson-c: not routing voice: another device already reports http://10.0.0.1:8888" in reasons

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


def test_registry_places_services_by_their_reported_weight_and_backup() -> None:
    devices = [
        DeviceView("jetson-a", services=[{"role": "voice", "url": "http://10.0.0.1:8888", "healthy": True,
                                          "weight": 3}]),
        DeviceView("jetson-b", services=[{"role": "voice", "url": "http://10.0.0.2:8888", "healthy": True,
                                          "backup": True}],
                   models=[{"name": "yolov8n", "serving_version": 2, "endpoint": "http://10.0.0.2:8100"}]),
    ]
    live = fleet_from_devices(devices, GatewaySettings())
    assert live.skipped == ()
    assert [(n.name, n.roles, n.url, n.weight, n.backup) for n in live.fleet.nodes] == [
        ("jetson-a", ("voice",), "http://10.0.0.1:8888", 3, False),
        # the model keeps the default placement; the backup voice service becomes its own node
        ("jetson-b", ("yolov8n",), "http://10.0.0.2:8100", 1, False),
        ("jetson-b.voice", ("voice",), "http://10.0.0.2:8888", 1, True)]


def test_service_placement_is_validated_on_the_wire() -> None:
    from pydantic import ValidationError

    from jetfleet.protocol import ServiceEndpoint

    assert ServiceEndpoint(role="voice", url="http://10.0.0.1:8888", backup=True, weight=2).weight == 2
    with pytest.raises(ValidationError, match="weight"):
        ServiceEndpoint(role="voice", url="http://10.0.0.1:8888", weight=0)


@pytest.mark.parametrize("url", ["http://jetson-a.local:8888/api/voice", "https://[fe80::1]:8443", "http://10.0.0.1"])
def test_a_service_url_is_printable_ascii(url: str) -> None:
    from jetfleet.protocol import ServiceEndpoint

    assert ServiceEndpoint(role="voice", url=url).url == url


@pytest.mark.parametrize("url", ["http://h/\x85x", "http://h x/", "http://\u00e9t\u00e9/", "ftp://h/", "http:///x"])
def test_a_service_url_that_is_not_printable_ascii_is_refused(url: str) -> None:
    # "\x85" is a space to Python's \s and not to JSON Schema's: an explicit ASCII range means the same to both
    from pydantic import ValidationError

    from jetfleet.protocol import ServiceEndpoint

    with pytest.raises(ValidationError, match="url"):
        ServiceEndpoint(role="voice", url=url)

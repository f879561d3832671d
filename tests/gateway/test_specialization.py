"""Specialization: voice, vision and each model go to the nodes that serve them, and nowhere else."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.conftest import Gateway, Node, command, start_nodes


def test_each_path_reaches_only_the_nodes_that_serve_it(traefik_bin: str, voice_nodes: dict[str, Node],
                                                        tmp_path: Path, cleanup: list[Any]) -> None:
    voice = [voice_nodes["jetson-a"], voice_nodes["jetson-b"]]
    models = start_nodes(tmp_path, ["jetson-m1", "jetson-m2", "jetson-cam"], kind="echo")
    resnet_on_a = Node(tmp_path, "jetson-a-resnet", kind="echo")
    resnet_on_a.start()
    cleanup.extend([*models, resnet_on_a])
    m1, m2, cam = models
    fleet = [
        {"name": "jetson-a", "url": voice[0].url, "roles": ["voice", "resnet"], "urls": {"resnet": resnet_on_a.url}},
        {"name": "jetson-b", "url": voice[1].url, "roles": ["voice"]},
        {"name": "jetson-m1", "url": m1.url, "roles": ["yolov8n"]},
        {"name": "jetson-m2", "url": m2.url, "roles": ["yolov8n", "resnet"]},
        {"name": "jetson-cam", "url": cam.url, "roles": ["vision"]},
    ]
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet, strategy="wrr")
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file", "model-yolov8n@file", "model-resnet@file", "vision@file"])

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        def served(method: str, path: str, n: int = 6, **kwargs: Any) -> Counter[str]:
            answers = [client.request(method, path, **kwargs) for _ in range(n)]
            assert all(a.status_code == 200 for a in answers), (path, [a.status_code for a in answers])
            return Counter(a.json()["node"] for a in answers)

        assert served("POST", "/api/voice/listen", json=command(0)) == {"jetson-a": 3, "jetson-b": 3}
        assert served("POST", "/v2/models/yolov8n/infer", json={"inputs": []}) == {"jetson-m1": 3, "jetson-m2": 3}
        assert served("GET", "/v2/models/yolov8n", n=2) == {"jetson-m1": 1, "jetson-m2": 1}
        assert served("POST", "/v2/models/resnet/infer", json={}) == {"jetson-a-resnet": 3, "jetson-m2": 3}
        assert served("POST", "/api/vision/detect", n=2) == {"jetson-cam": 2}

        assert client.post("/v2/models/unknown/infer", json={}).status_code == 404
        assert client.post("/v2/models/yolov8nx/infer", json={}).status_code == 404  # no prefix confusion
        assert client.get("/api/voices").status_code == 404

"""Specialization: voice, vision and each model go to the nodes that serve them, and nowhere else.

Voice nodes are the session's voice servers, model nodes real ``jetfleet serve-model`` processes (KServe
v2; each node serves another version of the model, so an answer's ``model_version`` names the node), the
vision node an echo node (no vision service exists yet).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.gateway.conftest import Gateway, ModelNode, Node, command

INFER = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.25]}]}


def test_each_path_reaches_only_the_nodes_that_serve_it(traefik_bin: str, voice_nodes: dict[str, Node],
                                                        tmp_path: Path, cleanup: list[Any]) -> None:
    detectors = [ModelNode(tmp_path, "detector", version) for version in ("1", "2")]
    classifiers = [ModelNode(tmp_path, "classifier", version) for version in ("1", "2")]
    camera = Node(tmp_path, "jetson-cam", kind="echo")
    cleanup.extend([*detectors, *classifiers, camera])
    for model in (*detectors, *classifiers):
        model.wait_ready()
    camera.start()
    fleet = [
        {"name": "jetson-a", "url": voice_nodes["jetson-a"].url, "roles": ["voice", "classifier"],
         "urls": {"classifier": classifiers[0].url}},
        {"name": "jetson-b", "url": voice_nodes["jetson-b"].url, "roles": ["voice"]},
        {"name": "jetson-m1", "url": detectors[0].url, "roles": ["detector"]},
        {"name": "jetson-m2", "url": detectors[1].url, "roles": ["detector", "classifier"],
         "urls": {"classifier": classifiers[1].url}},
        {"name": "jetson-cam", "url": camera.url, "roles": ["vision"]},
    ]
    gateway = Gateway.for_fleet(tmp_path / "gw", fleet, strategy="wrr")
    cleanup.append(gateway)
    gateway.wait_ready(["voice@file", "model-detector@file", "model-classifier@file", "vision@file"])

    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        def answers(method: str, path: str, n: int = 6, **kwargs: Any) -> list[dict[str, Any]]:
            replies = [client.request(method, path, **kwargs) for _ in range(n)]
            assert all(r.status_code == 200 for r in replies), (path, [(r.status_code, r.text) for r in replies])
            return [r.json() for r in replies]

        voice = Counter(a["node"] for a in answers("POST", "/api/voice/listen", json=command(0)))
        assert voice == {"jetson-a": 3, "jetson-b": 3}
        detector = answers("POST", "/v2/models/detector/infer", json=INFER)
        assert Counter((a["model_name"], a["model_version"]) for a in detector) == {("detector", "1"): 3,
                                                                                     ("detector", "2"): 3}
        assert len(detector[0]["outputs"][0]["data"]) == 3
        classifier = answers("POST", "/v2/models/classifier/infer", json=INFER)
        assert Counter(a["model_version"] for a in classifier) == {"1": 3, "2": 3}
        metadata = answers("GET", "/v2/models/detector", n=2)
        assert {v for m in metadata for v in m["versions"]} == {"1", "2"}
        assert Counter(a["node"] for a in answers("POST", "/api/vision/detect", n=2)) == {"jetson-cam": 2}

        assert client.post("/v2/models/unknown/infer", json=INFER).status_code == 404
        assert client.post("/v2/models/detectorx/infer", json=INFER).status_code == 404  # no prefix confusion
        assert client.get("/api/voices").status_code == 404

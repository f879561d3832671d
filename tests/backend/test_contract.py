"""The control plane's OpenAPI contract holds: schemathesis (all phases, all checks) against a real server.

Every operation in /openapi.json is fuzzed, so an endpoint added later is covered without a line here.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.backend import ADMIN_TOKEN, backend_server
from tests.support.schemathesis_run import run_schemathesis


def test_control_plane_matches_its_schema(tmp_path: Path) -> None:
    with backend_server(tmp_path / "backend") as backend:
        report = run_schemathesis(f"{backend.url}/openapi.json", tmp_path, bearer=ADMIN_TOKEN, max_examples=12)
    selected = re.search(r"(\d+) selected / (\d+) total", report)
    assert selected and selected.group(1) == selected.group(2), "every operation is fuzzed"
    # the stateful phase follows the declared links into core logic (register -> heartbeat, push -> deploy)
    links = re.search(r"API Links:\s+(\d+) covered", report)
    assert links and int(links.group(1)) >= 6, report[-3000:]

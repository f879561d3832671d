"""How every ``jetfleet bench ...`` command prints its result: a table, or one JSON object."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def print_result(title: str, result: Mapping[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(dict(result)))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console().print(table)

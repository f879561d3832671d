"""The monitor's rich tables: one row per Jetson, one row per Traefik service."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from jetfleet.gateway.monitor import Snapshot


def _flag(value: bool | None, yes: str = "yes", no: str = "no") -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(yes, style="green") if value else Text(no, style="red")


def _number(value: float | int | None, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def snapshot_tables(snapshot: Snapshot) -> RenderableType:
    nodes = Table(title="Jetsons")
    for column in ("node", "roles", "status", "robot", "whisper model", "commands", "p50 ms", "traefik"):
        nodes.add_column(column, justify="right" if column in ("commands", "p50 ms") else "left")
    for node in snapshot.nodes:
        nodes.add_row(node.name, ", ".join(node.roles), _flag(node.online, "online", "offline"),
                      _flag(node.robot_connected, "connected", "not connected"), node.whisper_model or "-",
                      _number(node.command_count), _number(node.latency_p50_ms, "{:.1f}"),
                      _flag(node.traefik_up, "UP", "DOWN"))
    services = Table(title="Traefik services")
    for column in ("service", "servers up", "requests", "5xx errors"):
        services.add_column(column, justify="left" if column == "service" else "right")
    for service in snapshot.services:
        services.add_row(service.name, f"{service.servers_up}/{service.servers}", str(service.requests),
                         Text(str(service.errors), style="red" if service.errors else ""))
    parts: list[RenderableType] = [nodes, services]
    if snapshot.gateway_error:
        parts.append(Text(f"gateway: {snapshot.gateway_error}", style="red"))
    return Group(*parts)

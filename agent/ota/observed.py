"""What the agent observes of the world before planning (plain, frozen data; filled by ``observe``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InstalledVersion:
    """A complete version directory (``models_dir/NAME/VERSION`` with a valid model.json)."""

    version: int
    sha256: str
    disk_bytes: int


@dataclass(frozen=True)
class PartialDownload:
    name: str
    version: int
    sha256: str
    bytes_done: int
    size_bytes: int

    @property
    def complete(self) -> bool:
        return self.bytes_done == self.size_bytes


@dataclass(frozen=True)
class Instance:
    """A model server (container or process) for one version, on its own port."""

    name: str
    version: int
    port: int
    running: bool
    ident: str  # container id, or pid


@dataclass(frozen=True)
class Route:
    """Where the node's stable endpoint sends a model's traffic."""

    version: int
    port: int


@dataclass(frozen=True)
class Observed:
    installed: Mapping[str, Mapping[int, InstalledVersion]] = field(default_factory=dict)
    downloads: tuple[PartialDownload, ...] = ()
    instances: tuple[Instance, ...] = ()
    routes: Mapping[str, Route] = field(default_factory=dict)
    free_bytes: int = 0
    busy: frozenset[str] = frozenset()  # models with steps in flight

    def instances_of(self, name: str) -> list[Instance]:
        return [i for i in self.instances if i.name == name]

    def serving_instance(self, name: str) -> Instance | None:
        """The running instance the route points at, if any."""
        route = self.routes.get(name)
        if route is None:
            return None
        return next((i for i in self.instances_of(name)
                     if i.running and i.version == route.version and i.port == route.port), None)

    def partial(self, name: str, version: int, sha256: str) -> PartialDownload | None:
        return next((d for d in self.downloads if (d.name, d.version, d.sha256) == (name, version, sha256)), None)

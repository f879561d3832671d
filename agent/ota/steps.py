"""The planner's steps: small frozen records; the executor maps each type to one handler.

Steps for one model run in order, as one pipeline; the first failure ends it (with a rollback when a
candidate was started). ``heal`` steps restore what already served and never change the reported state.
"""

from __future__ import annotations

from dataclasses import dataclass

from jetfleet.manifest import DesiredModel


@dataclass(frozen=True)
class Step:
    name: str  # the model


@dataclass(frozen=True)
class Download(Step):
    """Fetch the artifact (and golden files) into ``models_dir/.downloads``, resuming with Range."""

    model: DesiredModel
    resume_from: int = 0


@dataclass(frozen=True)
class Verify(Step):
    """Check sha256, then install atomically as ``models_dir/NAME/VERSION`` (state: verifying -> staged)."""

    model: DesiredModel


@dataclass(frozen=True)
class StartCandidate(Step):
    """Start a model server for ``version`` on a free port and wait until it is ready."""

    version: int
    convert: bool = False  # it builds a TensorRT engine while loading (state: converting)
    heal: bool = False


@dataclass(frozen=True)
class HealthCheck(Step):
    """KServe v2 model-ready, then the golden input against the golden output (when the version has one)."""

    version: int
    heal: bool = False


@dataclass(frozen=True)
class Switch(Step):
    """Point the node's endpoint at the candidate and confirm the router serves it."""

    version: int
    heal: bool = False


@dataclass(frozen=True)
class Commit(Step):
    """Record ``version`` as serving (``replaced`` becomes the last-known-good)."""

    version: int
    replaced: int | None = None


@dataclass(frozen=True)
class StopOld(Step):
    """Drain, then stop and remove every instance of the model the route does not point at."""


@dataclass(frozen=True)
class StopInstance(Step):
    version: int
    ident: str


@dataclass(frozen=True)
class RemoveVersion(Step):
    """Delete ``models_dir/NAME/VERSION`` (cleanup, or room for a download)."""

    version: int


@dataclass(frozen=True)
class RemovePartial(Step):
    version: int
    sha256: str


@dataclass(frozen=True)
class Unroute(Step):
    """Take the model off the node's endpoint (it is no longer deployed)."""


@dataclass(frozen=True)
class Forget(Step):
    """Stop reporting the model (undeployed, nothing left running)."""


@dataclass(frozen=True)
class Notify(Step):
    """Report that ``model`` is wanted but will not be applied now (``auto_update: false``)."""

    model: DesiredModel


@dataclass(frozen=True)
class Fail(Step):
    """Record a failure of ``model`` without trying (e.g. DISK_SPACE); retried after ``retry_after`` seconds."""

    model: DesiredModel
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Defer(Step):
    """An update lock is held: ``model`` is staged but not switched to (state ``deferred``, ``reason``)."""

    model: DesiredModel
    reason: str

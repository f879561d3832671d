"""Wire models of the drift API (/api/v1/drift), shared by the API, the CLI, the metrics and the webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STATISTICS = ("psi", "js", "ks", "wasserstein")


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureDrift(_Wire):
    """One input feature against its reference, over the recent windows merged (``drift``: the window rule)."""

    input: str
    index: int
    drift: bool = Field(description="flagged (KS above its threshold) in at least min_windows recent windows")
    psi: float | None = None  # None: no current rows (or not finite, e.g. a constant reference)
    js: float | None = None
    ks: float | None = None
    wasserstein: float | None = None
    psi_threshold: float | None = None
    js_threshold: float | None = None
    ks_threshold: float | None = None
    wasserstein_threshold: float | None = None
    n_reference: int
    n_current: int
    windows: int = Field(description="recent windows with enough rows to test")
    windows_drifting: int


class DriftReport(_Wire):
    model: str
    version: int
    device_id: str | None = Field(default=None, description="None: the whole fleet")
    drift: bool
    reference: Literal["pushed", "first_rows", "collecting"]
    reference_rows: int = Field(description="rows in the reference (or collected so far)")
    window_seconds: float
    min_windows: int
    alpha: float
    window_start: datetime | None = None
    window_end: datetime | None = None
    devices: list[str] = Field(default_factory=list)
    features: list[FeatureDrift] = Field(default_factory=list)

"""Path parameters of the control plane's API, with the constraints the server enforces in the schema."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from jetfleet.manifest import MODEL_NAME_PATTERN, TAG_PATTERN
from jetfleet.protocol import DEVICE_ID_PATTERN

SHA256_PATTERN = r"^[0-9a-f]{64}$"
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="device id")]
ModelNamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="model name")]
TagPath = Annotated[str, Path(pattern=TAG_PATTERN, description="tag, e.g. prod")]
Sha256Path = Annotated[str, Path(pattern=SHA256_PATTERN, description="the artifact's sha256 (lowercase hex)")]
RolloutIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="rollout id")]  # a database integer

"""The deployment state machine and its reason codes, as reported in every heartbeat (``ModelStatus``).

::

    notified -> downloading -> verifying -> [converting] -> staged -> activating -> health_check
             -> committed | rolled_back | failed

``deferred``: staged, but an update lock is held (reason ``LOCKED``, ``LOCKED/OVERDUE`` past the maximum).
``notified``: a new version is wanted but not being applied (``auto_update: false``, or waiting).
``converting``: the candidate builds its TensorRT engine while loading. ``rolled_back``: the
candidate failed and the previous version keeps serving; ``failed``: it failed and nothing else serves.

Reasons are ``KIND/DETAIL`` (Greengrass-style): e.g. ``DOWNLOAD_ERROR/HTTP_404``,
``VERIFY_ERROR/SHA_MISMATCH``, ``VERIFY_ERROR/BAD_SIGNATURE``, ``DISK_SPACE``,
``CONVERT_ERROR/TRT_BUILD``, ``HEALTH_ERROR/READY_TIMEOUT``, ``HEALTH_ERROR/GOLDEN_MISMATCH``.
"""

from __future__ import annotations

NOTIFIED = "notified"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
CONVERTING = "converting"
STAGED = "staged"
ACTIVATING = "activating"
HEALTH_CHECK = "health_check"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"
FAILED = "failed"
DEFERRED = "deferred"

STATES = (NOTIFIED, DOWNLOADING, VERIFYING, CONVERTING, STAGED, DEFERRED, ACTIVATING, HEALTH_CHECK, COMMITTED,
          ROLLED_BACK, FAILED)
TERMINAL = (COMMITTED, ROLLED_BACK, FAILED)

DISK_SPACE = "DISK_SPACE"
SHA_MISMATCH = "VERIFY_ERROR/SHA_MISMATCH"
BAD_SIGNATURE = "VERIFY_ERROR/BAD_SIGNATURE"
READY_TIMEOUT = "HEALTH_ERROR/READY_TIMEOUT"
GOLDEN_MISMATCH = "HEALTH_ERROR/GOLDEN_MISMATCH"
TRT_BUILD = "CONVERT_ERROR/TRT_BUILD"
LOCKED = "LOCKED"
LOCKED_OVERDUE = "LOCKED/OVERDUE"

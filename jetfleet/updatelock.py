"""The device's update lock: a file that a busy process holds ``flock(LOCK_EX)`` on to veto model swaps.

A robot in the middle of a task must not have its model swapped under it. Any process on the device
(the voice service while it executes a robot command sequence, or a user's own program) takes the lock
with :func:`hold` (or ``flock /var/lib/jetson-client/update.lock -c 'my-task'`` from a shell); while it is
held the agent downloads and stages new versions but does not switch. The kernel drops the lock when the
holder exits, so a crashed holder never blocks updates for good. The agent only looks (:func:`is_held`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold the update lock for the duration of the block (waits while another holder has it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_held(path: Path) -> bool:
    """True while some process holds the lock (probes with a non-blocking shared lock, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

"""The device's update lock: a file that busy processes hold ``flock`` on to veto model swaps.

A robot in the middle of a task must not have its model swapped under it. Any process on the device
(the voice service while it executes a robot command sequence, or a user's own program) takes the lock
with :func:`hold` (or ``flock -s /run/lock/jetson-client.update.lock -c 'my-task'`` from a shell); while
it is held the agent downloads and stages new versions but does not switch. Holders open the file read-only:
a lock file another user created (0644) can be held by anyone, and /run/lock (world-writable, sticky) lets
any process create it. Holders take a *shared* lock, so several busy processes never wait for each other;
the agent probes with a non-blocking exclusive lock that it drops at once (:func:`is_held`). The kernel
drops a lock when its holder exits, so a crashed holder never blocks updates for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def hold(path: Path) -> Iterator[None]:
    """Hold the update lock (shared with other holders) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_held(path: Path) -> bool:
    """True while some holder has the lock (a non-blocking exclusive probe, released at once)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

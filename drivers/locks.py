"""A lock held with a deadline: a stuck call elsewhere is an error here, not a hang."""

import contextlib

from .errors import DeviceTimeout


@contextlib.contextmanager
def held(lock, timeout_s: float, what: str):
    """Hold `lock`; DeviceTimeout naming `what` if another call keeps it past `timeout_s`."""
    if not lock.acquire(timeout=timeout_s):
        raise DeviceTimeout(f"{what}: busy for {timeout_s:g} s (another call is stuck)")
    try:
        yield
    finally:
        lock.release()

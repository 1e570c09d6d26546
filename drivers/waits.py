"""Waits with deadlines: a lock held, a thread joined. A stuck party is reported, not waited on.

STYLE: every wait has a deadline, and a join is checked. These two helpers are how.
"""

import contextlib
import logging
import threading

from .errors import DeviceTimeout

log = logging.getLogger("glasses.waits")


@contextlib.contextmanager
def held(lock, timeout_s: float, what: str):
    """Hold `lock`; DeviceTimeout naming `what` if another call keeps it past `timeout_s`."""
    if not lock.acquire(timeout=timeout_s):
        raise DeviceTimeout(f"{what}: busy for {timeout_s:g} s (another call is stuck)")
    try:
        yield
    finally:
        lock.release()


def joined(thread: threading.Thread | None, timeout_s: float) -> bool:
    """Join `thread` for at most `timeout_s`; False (and a warning naming it) if it still runs."""
    if thread is None or thread is threading.current_thread():
        return True
    thread.join(timeout=timeout_s)
    if thread.is_alive():
        log.warning("thread %s did not stop within %g s; left running (daemon)", thread.name, timeout_s)
        return False
    return True

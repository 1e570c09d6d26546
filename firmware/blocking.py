"""Blocking calls off the event loop, each with a deadline.

Device I/O, subprocesses and file writes run in the default executor. A call that does not
finish by its deadline raises DeviceTimeout naming what was called; its thread cannot be
killed, so it runs on, but the loop (and the user waiting on it) moves on. The drivers keep
their own, shorter deadlines inside, so this is the backstop, not the first line.
"""

import asyncio
import functools
import logging
import time

from glasses_firmware.drivers.errors import DeviceTimeout

log = logging.getLogger("glasses.blocking")

DEFAULT_TIMEOUT_S = 30.0
VIRTUAL_POLL_S = 0.05


class Blocking:
    """`await blocking.run(fn, *args, timeout_s=...)`; counts calls that passed their deadline."""

    def __init__(self, default_timeout_s: float = DEFAULT_TIMEOUT_S):
        self.default_timeout_s = default_timeout_s
        self.timed_out = 0

    async def run(self, fn, *args, timeout_s: float | None = None):
        limit = self.default_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, functools.partial(fn, *args))
        # The deadline is in real seconds, not the firmware's clock: a thread stuck in a
        # driver does not care how fast virtual time runs. A virtual-time loop jumps
        # ahead in small steps while a job is in flight, so it is polled there.
        step = VIRTUAL_POLL_S if getattr(loop, "virtual_clock", None) is not None else None
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, _ = await asyncio.wait({job}, timeout=min(left, step) if step else left)
            if done:
                return job.result()
        self.timed_out += 1
        name = getattr(fn, "__qualname__", repr(fn))
        log.warning("%s did not finish within %g s", name, limit)
        raise DeviceTimeout(f"{name} did not finish within {limit:g} s; the device may be "
                            "stuck (see `selftest`)")

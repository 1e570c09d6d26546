"""systemd notifications: READY once running, WATCHDOG while the loop is alive.

The image's unit is Type=notify with WatchdogSec; without NOTIFY_SOCKET (the sim, a
terminal) these are no-ops. The watchdog ping runs on the event loop itself, so a
stuck loop stops the pings and systemd restarts the service.
"""

import asyncio
import logging
import os
import socket

log = logging.getLogger("glasses.notify")
# What the watchdog task has sent, for `status --json` (a boot test reads it over the UART).
pings = {"period_s": None, "sent": 0}


def notify(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract socket namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(message.encode())
        return True
    except OSError as e:
        log.warning("sd_notify %r failed: %s", message, e)
        return False


def watchdog_period_s() -> float | None:
    """Half of systemd's WatchdogSec, or None when no watchdog is armed for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6 / 2


async def keep_watchdog_fed() -> None:
    period = watchdog_period_s()
    pings["period_s"] = period
    if period is None:
        return
    while True:
        if notify("WATCHDOG=1"):
            pings["sent"] += 1
        await asyncio.sleep(period)  # real time on purpose: systemd counts wall seconds

"""Clocks: real time on boards, a settable virtual time on the sim.

Everything that waits or timestamps takes a clock, so the sim can run a day in seconds
and tests can step time exactly. `monotonic()` is for intervals, `wall()` for stamps.
"""

import asyncio
import threading
import time


class Clock:
    """Real time. `sleep` returns early (False) when `stop` is set."""

    realtime = True
    listeners: tuple = ()  # real time never jumps, so nobody is told of jumps

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def asleep(self, seconds: float) -> None:
        """Sleep on the event loop for `seconds` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds))

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            time.sleep(max(0.0, seconds))
            return True
        return not stop.wait(max(0.0, seconds))


class SimClock(Clock):
    """Virtual time: runs with real time when `realtime`, else only when advanced.

    `advance(s)` jumps ahead (used by `sim advance` and by `--speed max`); sleepers
    wake as soon as their deadline has been passed.
    """

    def __init__(self, realtime: bool = True, start_wall: float | None = None):
        self.realtime = realtime
        self._cond = threading.Condition()
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._wall0 = time.time() if start_wall is None else start_wall
        self.listeners: list = []  # called after every advance(), outside the lock

    def monotonic(self) -> float:
        with self._cond:
            return self._now()

    def _now(self) -> float:
        elapsed = time.monotonic() - self._t0 if self.realtime else 0.0
        return self._offset + elapsed

    def wall(self) -> float:
        return self._wall0 + self.monotonic()

    async def asleep(self, seconds: float) -> None:
        loop_clock = getattr(asyncio.get_running_loop(), "virtual_clock", None)
        if self.realtime or loop_clock is self:
            # Real time, or a loop that runs on this clock and jumps it when idle.
            await asyncio.sleep(max(0.0, seconds))
        else:
            self.advance(max(0.0, seconds))  # nothing else moves virtual time forward
            await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot advance time by {seconds} s: time only moves forward")
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()
        for listener in list(self.listeners):
            listener()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        deadline = self.monotonic() + max(0.0, seconds)
        while True:
            if stop is not None and stop.is_set():
                return False
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                return True
            if self.realtime and stop is not None:
                # Real time passes by itself: wait on `stop` (woken at once when it is set);
                # a jump by advance() is noticed within a quarter of a second.
                if stop.wait(min(remaining, 0.25)):
                    return False
                continue
            with self._cond:
                # advance() notifies; without real time passing, a short poll notices `stop`.
                self._cond.wait(min(remaining, 0.05) if stop is not None else remaining)

"""An asyncio loop on virtual time that jumps ahead whenever nothing is runnable.

`glasses run --speed max` and `simulate-day` use it: the loop's clock is the SimClock,
and when the selector finds no I/O ready it advances the clock to the next timer
instead of waiting, so an idle hour takes no wall time.

"Nothing runnable" includes work handed to executor threads: while such a job is in
flight the loop first gives it a moment of real time, then moves virtual time only in
small steps, because the job may itself be waiting on virtual time (a camera frame).
"""

import asyncio
import selectors

REAL_WAIT_S = 0.002    # real time a job in flight gets before virtual time moves
SMALL_STEP_S = 0.02    # virtual step while a job is in flight


class _JumpingSelector:
    """Delegates to a real selector; turns "wait `timeout`" into a clock jump."""

    def __init__(self, inner: selectors.BaseSelector, clock):
        self._inner = inner
        self._clock = clock
        self.inflight = 0

    def select(self, timeout=None):
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if self.inflight:
            ready = self._inner.select(REAL_WAIT_S if timeout is None else min(timeout, REAL_WAIT_S))
            if ready:
                return ready
            self._clock.advance(SMALL_STEP_S if timeout is None else min(timeout, SMALL_STEP_S))
            return self._inner.select(0)
        if timeout is None:
            return self._inner.select(None)  # no timers, no jobs: only I/O can wake us
        self._clock.advance(timeout)
        return self._inner.select(0)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """Selector loop whose time() is `clock.monotonic()` and whose waits are jumps."""

    def __init__(self, clock):
        self._jumping = _JumpingSelector(selectors.DefaultSelector(), clock)
        super().__init__(self._jumping)
        self.virtual_clock = clock

    def time(self) -> float:
        return self.virtual_clock.monotonic()

    def run_in_executor(self, executor, func, *args):
        future = super().run_in_executor(executor, func, *args)
        self._jumping.inflight += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future) -> None:
        self._jumping.inflight -= 1

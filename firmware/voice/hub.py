"""One reader of the microphones, many listeners: 16 kHz mono chunks fanned out.

The microphones are a shared resource (the arbiter says so): the wake-word listener, an
assistant turn and a meeting recording may all want the same audio. The hub is the only
code that reads them; it runs the stream only while someone subscribes, and polls on the
firmware's clock so it behaves the same on virtual time. A stream that fails (a card that
vanished, a stalled driver) is reported once and reopened with back-off while anyone
still subscribes; its recovery is reported too.
"""

import asyncio
import logging
import time

from glasses_firmware.drivers.errors import DeviceTimeout, GlassesError

from ..ports import Blocking, Clock, EventSink, Microphones

log = logging.getLogger("glasses.audio")

POLL_S = 0.04          # default poll: endpoints are seen within 40 ms
RATE_HZ = 16000
RETRY_FIRST_S = 0.5    # back-off between attempts to reopen a failed stream
RETRY_MAX_S = 30.0
START_TIMEOUT_S = 5.0
STALL_S = 2.0          # no audio this long from a running stream: it has failed


class AudioHub:
    def __init__(self, microphones: Microphones, clock: Clock, events: EventSink, blocking: Blocking):
        self.mics, self.clock, self.events, self.blocking = microphones, clock, events, blocking
        self.subscribers: dict[str, object] = {}
        self.periods: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self.chunks = 0
        self.failures = 0

    def subscribe(self, name: str, callback, period_s: float = POLL_S) -> None:
        """`callback(chunk)` runs on the loop with each new float32 16 kHz mono chunk.

        The hub polls as often as its most impatient subscriber asks (`period_s`): the
        wake-word listener is content with 120 ms, an utterance being endpointed is not.
        """
        self.subscribers[name] = callback
        self.periods[name] = period_s
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audio-hub")

    def unsubscribe(self, name: str) -> None:
        self.subscribers.pop(name, None)
        self.periods.pop(name, None)

    async def _run(self) -> None:
        backoff_s = RETRY_FIRST_S
        failed = False
        try:
            while self.subscribers:
                try:
                    await self.blocking.run(self.mics.start, timeout_s=START_TIMEOUT_S)
                    if failed:
                        self.events.emit("fault", "microphones cleared")
                        failed, backoff_s = False, RETRY_FIRST_S
                    await self._pump()
                except GlassesError as e:
                    # A dead microphone must not take listening down for good.
                    self.failures += 1
                    if not failed:
                        log.warning("microphones stopped: %s", e)
                        self.events.emit("fault", f"microphones {e}")
                    failed = True
                    await self._stop_quietly()
                    await self.clock.asleep(backoff_s)
                    backoff_s = min(RETRY_MAX_S, backoff_s * 2)
        finally:
            self._task = None
            if not self.subscribers:
                await self._stop_quietly()

    async def _pump(self) -> None:
        heard_at, heard_real = self.clock.monotonic(), time.monotonic()
        while self.subscribers:
            await self.clock.asleep(min(self.periods.values(), default=POLL_S))
            chunk = self.mics.read_speech_available()
            if len(chunk):
                heard_at, heard_real = self.clock.monotonic(), time.monotonic()
                self.chunks += 1
                for callback in list(self.subscribers.values()):
                    callback(chunk)
            # A card that stopped clocking sends nothing and raises nothing. Silence on
            # both clocks counts: on virtual time the loop may outrun the card's thread.
            elif self.clock.monotonic() - heard_at > STALL_S and time.monotonic() - heard_real > STALL_S:
                raise DeviceTimeout(f"microphones: no audio for {STALL_S:g} s (the I2S card "
                                    "stopped?); reopening")

    async def _stop_quietly(self) -> None:
        try:
            await self.blocking.run(self.mics.stop, timeout_s=START_TIMEOUT_S)
        except GlassesError as e:
            log.info("microphones did not stop cleanly: %s", e)

    async def close(self) -> None:
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_quietly()

"""One reader of the microphones, many listeners: 16 kHz mono chunks fanned out.

The microphones are a shared resource (the arbiter says so): the wake-word listener,
an assistant turn and a meeting recording may all want the same audio. The hub is the
only code that reads them; it runs the stream only while someone subscribes, and polls
on the firmware's clock so it behaves the same on virtual time.
"""

import asyncio
import logging

log = logging.getLogger("glasses.audio")

POLL_S = 0.04          # default poll: endpoints are seen within 40 ms
RATE_HZ = 16000


class AudioHub:
    def __init__(self, fw):
        self.fw = fw
        self.subscribers: dict[str, object] = {}
        self.periods: dict[str, float] = {}
        self._task: asyncio.Task | None = None
        self.chunks = 0

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
        mics = self.fw.board.microphones
        try:
            await self.fw.run_blocking(mics.start)
            while self.subscribers:
                await self.fw.clock.asleep(min(self.periods.values(), default=POLL_S))
                chunk = mics.read_speech_available()
                if len(chunk):
                    self.chunks += 1
                    for callback in list(self.subscribers.values()):
                        callback(chunk)
        except Exception as e:  # a dead microphone must not take listening down for good
            log.warning("microphones stopped: %s", e)
            self.fw.events.emit("fault", f"microphones {e}")
        finally:
            self._task = None
            if not self.subscribers:
                await self.fw.run_blocking(mics.stop)

    async def close(self) -> None:
        self.subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.fw.run_blocking(self.fw.board.microphones.stop)

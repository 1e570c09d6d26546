"""Speech out: text -> voice -> speaker, one sentence at a time, stoppable at once.

English goes through the worker's TTS voice when the worker runs; Chinese and Korean,
and everything when no worker runs, through espeak-ng (the fallback voice).
"""

import logging
import time

from drivers.errors import GlassesError

from .cues import synthesize

log = logging.getLogger("glasses.speech")

SPEAKING_RATE_WPM = 165   # a little slower than espeak's default: easier in one ear
DRAIN_LIMIT_S = 120.0


class SpeechOut:
    def __init__(self, fw):
        self.fw = fw
        self.playing: list = []
        self.first_audio_at: float | None = None   # perf_counter of the first sentence queued
        self.first_synth_ms: float | None = None

    async def synthesize(self, text: str, language: str = "en"):
        worker = self.fw.voice
        if language == "en" and worker is not None and worker.state == "ready":
            return await worker.tts(text)
        return await self.fw.run_blocking(synthesize, text, language, SPEAKING_RATE_WPM)

    async def say(self, text: str, language: str = "en") -> None:
        """Queue `text` behind what is already playing; returns once it is queued."""
        text = text.strip()
        if not text:
            return
        t0 = time.perf_counter()
        try:
            audio, rate = await self.synthesize(text, language)
        except (GlassesError, OSError) as e:
            log.warning("cannot speak %r: %s", text[:40], e)
            self.fw.cues.earcon("error")
            return
        if self.first_audio_at is None:
            self.first_audio_at = time.perf_counter()
            self.first_synth_ms = (self.first_audio_at - t0) * 1000
        self.playing.append(self.fw.board.speaker.play(audio, rate))
        self.fw.events.emit("speak", text[:200])

    @property
    def busy(self) -> bool:
        self.playing = [p for p in self.playing if not p.done]
        return bool(self.playing)

    async def drain(self) -> None:
        """Wait (on the firmware's clock) until everything queued has played."""
        waited = 0.0
        while self.busy and waited < DRAIN_LIMIT_S:
            await self.fw.clock.asleep(0.05)
            waited += 0.05

    def stop(self) -> None:
        if self.playing:
            self.fw.board.speaker.stop()
        self.playing.clear()
        self.first_audio_at = None

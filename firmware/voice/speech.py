"""Speech out: text -> voice -> speaker, one sentence at a time, stoppable at once.

English goes through the voice worker's TTS voice when that worker runs; Chinese and
Korean, and everything when no worker runs, through espeak-ng (the fallback voice). A
sentence that cannot be spoken plays the error earcon instead, so nothing fails silently.
"""

import logging
import time

from glasses_firmware.drivers.errors import GlassesError

from ..ports import Blocking, Clock, Earcons, EventSink, Speaker, VoiceModels
from .cues import PLAY_TIMEOUT_S, synthesize

log = logging.getLogger("glasses.speech")

SPEAKING_RATE_WPM = 165   # a little slower than espeak's default: easier in one ear
DRAIN_LIMIT_S = 120.0
SYNTH_TIMEOUT_S = 30.0


class SpeechOut:
    def __init__(self, speaker: Speaker, voice: VoiceModels | None, earcons: Earcons,
                 events: EventSink, clock: Clock, blocking: Blocking, touch=lambda: None):
        self.speaker, self.voice, self.earcons = speaker, voice, earcons
        self.events, self.clock, self.blocking = events, clock, blocking
        self.touch = touch            # speaking counts as activity: no idle timeout mid-answer
        self.playing: list = []
        self.first_audio_at: float | None = None   # perf_counter of the first sentence queued
        self.first_synth_ms: float | None = None

    async def synthesize(self, text: str, language: str = "en"):
        if language == "en" and self.voice is not None and self.voice.state == "ready":
            return await self.voice.tts(text)
        return await self.blocking.run(synthesize, text, language, SPEAKING_RATE_WPM,
                                       timeout_s=SYNTH_TIMEOUT_S)

    async def say(self, text: str, language: str = "en") -> None:
        """Queue `text` behind what is already playing; returns once it is queued."""
        text = text.strip()
        if not text:
            return
        t0 = time.perf_counter()
        try:
            audio, rate = await self.synthesize(text, language)
            # Queueing may open the output stream: off the loop, with a deadline.
            playback = await self.blocking.run(self.speaker.play, audio, rate,
                                               timeout_s=PLAY_TIMEOUT_S)
        except (GlassesError, OSError) as e:
            log.warning("cannot speak %r: %s", text[:40], e)
            self.earcons.earcon("error")
            return
        if self.first_audio_at is None:
            self.first_audio_at = time.perf_counter()
            self.first_synth_ms = (self.first_audio_at - t0) * 1000
        self.playing.append(playback)
        self.touch()
        self.events.emit("speak", text[:200])

    @property
    def busy(self) -> bool:
        self.playing = [p for p in self.playing if not p.done]
        return bool(self.playing)

    async def drain(self) -> None:
        """Wait (on the firmware's clock) until everything queued has played."""
        waited = 0.0
        while self.busy and waited < DRAIN_LIMIT_S:
            await self.clock.asleep(0.05)
            waited += 0.05

    def stop(self) -> None:
        if self.playing:
            self.speaker.stop()
        self.playing.clear()
        self.first_audio_at = None

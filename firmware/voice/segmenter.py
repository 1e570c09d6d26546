"""The segmenter: microphone chunks in, voice events out (wake, pause, utterance, no speech).

Audio comes from the hub in short chunks. Watching (`watch()`), the VAD listens and, while
it hears speech (and a second around it), the wake-word model does too: a score over the
threshold is a `wake` event. Capturing (`capture()`), chunks are collected (starting with a
pre-roll, so the first syllable is kept) until the VAD has heard speech followed by enough
silence (`utterance`), or nothing was said in time (`no_speech`); at the first short pause
a `pause` event lets the listener end a device command early (`end_now()`).
Every timeout is counted in audio samples, not clock time, so a replayed recording gives
the same events. The assistant's own voice is never heard: while it speaks, captured audio
is dropped and the wake word needs a clearly higher score.
"""

import asyncio
import collections
import logging
from dataclasses import dataclass

import numpy as np

from glasses_firmware.drivers.errors import GlassesError

log = logging.getLogger("glasses.voice")

RATE_HZ = 16000
VAD_CHUNK = 512
WAKE_FRAME = 1280
WAKE_POLL_S = 0.12      # listening for the wake word: a few frames at a time is plenty
CAPTURE_POLL_S = 0.04   # endpointing an utterance: every 40 ms counts


@dataclass(frozen=True)
class ListenSettings:
    wake_word: str = "hey_jarvis"
    wake_threshold: float = 0.5
    wake_threshold_speaking: float = 0.85   # barge-in by voice while the speaker plays
    speech_prob: float = 0.5
    endpoint_silence_s: float = 0.5
    max_utterance_s: float = 12.0
    no_speech_s: float = 6.0
    pre_roll_s: float = 1.0
    echo_tail_s: float = 0.3
    energy_speech_dbfs: float = -42.0       # VAD fallback when no model runs
    early_silence_s: float = 0.1            # a pause this long may end a device command
    wake_batch: int = 3                     # 80 ms frames per wake-word request: fewer
                                            # round trips to the worker in standby
    wake_context_s: float = 1.5             # audio kept for the wake model while silent
    wake_hangover_s: float = 1.5            # keep feeding it this long after speech
    wake_refractory_s: float = 2.0          # the model's score stays up while its window
                                            # still holds the wake word: one trigger per word


class Segmenter:
    """Turns microphone chunks into voice events: `await on_event(kind, audio)`.

    kind is "wake" (audio None), "pause" (the utterance so far), "utterance" (the whole
    utterance) or "no_speech" (None). Events are awaited in order, so a "pause" handler may
    call `end_now()` and the utterance ends right there.
    """

    def __init__(self, voice, claims, clock, on_event, on_poll,
                 settings: ListenSettings = ListenSettings(), is_speaking=lambda: False):
        self.voice, self.claims, self.clock = voice, claims, clock
        self.on_event = on_event
        # `on_poll(period_s)`: feed me chunks this often; `on_poll(None)`: no audio needed
        # (its owner subscribes `feed` to the audio hub accordingly).
        self.on_poll = on_poll
        # Our own voice (spoken answers), not earcons: a 0.2 s tone at the start of an
        # utterance costs less than clipping the words a user says right after it.
        self.is_speaking = is_speaking
        self.s = settings
        self.state = "off"            # off | watch | capture
        self._ring = collections.deque(maxlen=int(settings.pre_roll_s * RATE_HZ / 1280) + 1)
        self._queue: collections.deque = collections.deque()
        self._task: asyncio.Task | None = None
        self._last_speaker_s = -1e9
        self._since_wake = 10 ** 9
        self._wake_buf = np.zeros(0, np.float32)
        self._gate_buf = np.zeros(0, np.float32)
        self._speech_left = 0
        self._end_now = False
        self._reset_capture()

    # Control.
    def watch(self) -> None:
        """Listen for the wake word (only with a voice worker: without one there is nothing
        to listen with until a button asks, so the microphones stay off)."""
        self.state = "watch"
        self._reset_capture()
        self.on_poll(WAKE_POLL_S if self.voice is not None else None)

    def stop(self) -> None:
        self.state = "off"
        self.on_poll(None)
        self._queue.clear()

    def capture(self, pre_roll_s: float | None = None, push_to_talk: bool = False,
                no_speech_s: float | None = None) -> None:
        """Start collecting one utterance now (after a trigger, or for a follow-up)."""
        self.on_poll(CAPTURE_POLL_S)
        self._reset_capture()
        keep = self.s.pre_roll_s if pre_roll_s is None else pre_roll_s
        if keep > 0 and self._ring:
            pre = np.concatenate(list(self._ring))[-int(keep * RATE_HZ):]
            self._utterance.append(pre)
            self._samples += len(pre)
        self._push_to_talk = push_to_talk
        self._no_speech = int((self.s.no_speech_s if no_speech_s is None else no_speech_s) * RATE_HZ)
        self.state = "capture"

    def release(self) -> None:
        """Push-to-talk button released: the utterance ends with the next chunk."""
        if self.state == "capture" and self._push_to_talk:
            self._end_now = True
            self._kick()

    def end_now(self) -> None:
        """The utterance so far is complete (called from a "pause" handler)."""
        self._end_now = True

    def _reset_capture(self) -> None:
        self._utterance: list[np.ndarray] = []
        self._samples = 0
        self._speech_seen = False
        self._silence = 0
        self._waited = 0
        self._push_to_talk = False
        self._asked_early = False
        self._end_now = False
        self._no_speech = int(self.s.no_speech_s * RATE_HZ)
        self._vad_buf = np.zeros(0, np.float32)
        self._vad_fresh = True

    # Audio.
    def feed(self, chunk: np.ndarray) -> None:
        """The next chunk of 16 kHz mono audio (from the hub, on the loop)."""
        self._ring.append(chunk)
        self._queue.append(chunk)
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="segmenter")

    def speaker_active(self) -> bool:
        now = self.clock.monotonic()
        if self.is_speaking():
            self._last_speaker_s = now
        return now - self._last_speaker_s < self.s.echo_tail_s

    async def _drain(self) -> None:
        while self._queue or (self._end_now and self.state == "capture"):
            chunk = self._queue.popleft() if self._queue else np.zeros(0, np.float32)
            try:
                if self.state == "watch":
                    await self._watch(chunk)
                elif self.state == "capture":
                    await self._capture(chunk)
            except GlassesError as e:
                log.warning("listening: %s", e)

    def _ready(self) -> bool:
        return self.voice is not None and self.voice.state == "ready"

    async def _watch(self, chunk: np.ndarray) -> None:
        if not self._ready() or self.claims.suspended("wake_word"):
            self._wake_buf = self._wake_buf[:0]
            return
        # VAD gates the wake word: Silero costs a tenth of openWakeWord, and standby is
        # mostly silence. Audio waits in a bounded buffer, so when speech starts the wake
        # model gets the second before it too (its features need that context).
        self._wake_buf = np.concatenate([self._wake_buf, chunk])[-int(self.s.wake_context_s * RATE_HZ):]
        self._gate_buf = np.concatenate([self._gate_buf, chunk])
        n = len(self._gate_buf) // VAD_CHUNK * VAD_CHUNK
        if n:
            audio, self._gate_buf = self._gate_buf[:n], self._gate_buf[n:]
            if (await self.voice.vad(audio) >= self.s.speech_prob).any():
                self._speech_left = int(self.s.wake_hangover_s * RATE_HZ)
            else:
                self._speech_left = max(0, self._speech_left - n)
        if self._speech_left <= 0:
            return
        # Whole 80 ms frames only, a few at a time: the model steps in frames, and each
        # request to the worker has a fixed cost.
        n = len(self._wake_buf) // WAKE_FRAME * WAKE_FRAME
        if n < self.s.wake_batch * WAKE_FRAME:
            return
        chunk, self._wake_buf = self._wake_buf[:n], self._wake_buf[n:]
        scores = await self.voice.wake(chunk)
        self._since_wake += len(chunk)
        if self._since_wake < self.s.wake_refractory_s * RATE_HZ:
            return
        score = scores.get(self.s.wake_word, 0.0)
        threshold = self.s.wake_threshold_speaking if self.speaker_active() else self.s.wake_threshold
        if score >= threshold and self.state == "watch":
            log.info("wake word %s (%.2f)", self.s.wake_word, score)
            self._since_wake = 0
            await self.on_event("wake", None)

    async def _speech_probs(self, chunk: np.ndarray) -> np.ndarray:
        if self._ready():
            self._vad_buf = np.concatenate([self._vad_buf, chunk])
            n = len(self._vad_buf) // VAD_CHUNK * VAD_CHUNK
            if n == 0:
                return np.zeros(0, np.float32)
            audio, self._vad_buf = self._vad_buf[:n], self._vad_buf[n:]
            fresh, self._vad_fresh = self._vad_fresh, False
            return await self.voice.vad(audio, reset=fresh)   # each utterance starts clean
        # No model: loudness decides, per 32 ms.
        frames = chunk[: len(chunk) // VAD_CHUNK * VAD_CHUNK].reshape(-1, VAD_CHUNK)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        return (20 * np.log10(rms) > self.s.energy_speech_dbfs).astype(np.float32)

    async def _capture(self, chunk: np.ndarray) -> None:
        if self._end_now:
            await self._finish(heard=self._samples > 0)
            return
        if self.speaker_active():
            return  # our own voice: neither content nor evidence of silence
        self._utterance.append(chunk)
        self._samples += len(chunk)
        if self._push_to_talk:
            if self._samples >= self.s.max_utterance_s * RATE_HZ:
                await self._finish(heard=True)
            return
        for p in await self._speech_probs(chunk):
            if p >= self.s.speech_prob:
                self._speech_seen, self._silence, self._asked_early = True, 0, False
            elif self._speech_seen:
                self._silence += VAD_CHUNK
            else:
                self._waited += VAD_CHUNK
        if self._speech_seen and not self._asked_early and \
                self._silence >= self.s.early_silence_s * RATE_HZ:
            self._asked_early = True
            await self.on_event("pause", np.concatenate(self._utterance))
            if self._end_now and self.state == "capture":
                await self._finish(heard=True)
                return
        if self._speech_seen and self._silence >= self.s.endpoint_silence_s * RATE_HZ:
            await self._finish(heard=True)
        elif self._samples >= self.s.max_utterance_s * RATE_HZ:
            await self._finish(heard=self._speech_seen)
        elif not self._speech_seen and self._waited >= self._no_speech:
            await self._finish(heard=False)

    async def _finish(self, heard: bool) -> None:
        audio = np.concatenate(self._utterance) if heard and self._utterance else None
        self.watch()
        await self.on_event("utterance" if audio is not None else "no_speech", audio)

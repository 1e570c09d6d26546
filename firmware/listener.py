"""Listening: the wake word in STANDBY, then one utterance cut out by voice activity.

Audio comes from the hub in short chunks. In `wake` state the VAD listens and, while
it hears speech (and a second around it), the wake-word model does too. In `capture`
state chunks are collected (starting with a pre-roll, so the first syllable is kept)
until the VAD has heard speech followed by enough silence.
Every timeout is counted in audio samples, not clock time, so a replayed recording
gives the same result. The assistant's own voice is never heard: while it speaks,
captured audio is dropped and the wake word needs a clearly higher score.
"""

import asyncio
import collections
import logging
from dataclasses import dataclass

import numpy as np

from drivers.errors import GlassesError

log = logging.getLogger("glasses.listener")

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


class Listener:
    """Turns microphone chunks into triggers (`on_wake()`) and utterances (`on_utterance(audio)`)."""

    def __init__(self, fw, on_wake, on_utterance, settings: ListenSettings = ListenSettings(),
                 is_speaking=lambda: False, early=None):
        self.fw = fw
        # `early(audio) -> awaitable bool`: asked once per pause whether the utterance so
        # far is already complete (a device command), so it need not wait the full silence.
        self.early = early
        # Our own voice (spoken answers), not earcons: a 0.2 s tone at the start of an
        # utterance costs less than clipping the words a user says right after it.
        self.is_speaking = is_speaking
        self.on_wake = on_wake
        self.on_utterance = on_utterance
        self.s = settings
        self.state = "off"            # off | wake | capture
        self._ring = collections.deque(maxlen=int(settings.pre_roll_s * RATE_HZ / 1280) + 1)
        self._queue: collections.deque = collections.deque()
        self._task: asyncio.Task | None = None
        self._last_speaker_s = -1e9
        self._since_wake = 10 ** 9
        self._wake_buf = np.zeros(0, np.float32)
        self._gate_buf = np.zeros(0, np.float32)
        self._speech_left = 0
        self._reset_capture()

    # Control.
    def start(self) -> None:
        if self.state == "off":
            self.state = "wake"
            # Without a wake-word model there is nothing to listen for until a button
            # asks (listen()): the microphones stay off.
            if self.fw.voice is not None:
                self.fw.audio.subscribe("listener", self._on_chunk, WAKE_POLL_S)

    def stop(self) -> None:
        self.state = "off"
        self.fw.audio.unsubscribe("listener")
        self._queue.clear()

    def listen(self, pre_roll_s: float | None = None, push_to_talk: bool = False,
               no_speech_s: float | None = None) -> None:
        """Start collecting one utterance now (after a trigger, or for a follow-up)."""
        self.start()
        self.fw.audio.subscribe("listener", self._on_chunk, CAPTURE_POLL_S)
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
        """Push-to-talk button released: the utterance ends here."""
        if self.state == "capture" and self._push_to_talk:
            self._finish(heard=self._samples > 0)

    def back_to_wake(self) -> None:
        if self.state != "off":
            self.state = "wake"
            self._reset_capture()
            if self.fw.voice is None:
                self.fw.audio.unsubscribe("listener")
            else:
                self.fw.audio.subscribe("listener", self._on_chunk, WAKE_POLL_S)

    def _reset_capture(self) -> None:
        self._utterance: list[np.ndarray] = []
        self._samples = 0
        self._speech_seen = False
        self._silence = 0
        self._waited = 0
        self._push_to_talk = False
        self._asked_early = False
        self._no_speech = int(self.s.no_speech_s * RATE_HZ)
        self._vad_buf = np.zeros(0, np.float32)
        self._vad_fresh = True

    # Audio.
    def _on_chunk(self, chunk: np.ndarray) -> None:
        self._ring.append(chunk)
        self._queue.append(chunk)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name="listener")

    def speaker_active(self) -> bool:
        now = self.fw.clock.monotonic()
        if self.is_speaking():
            self._last_speaker_s = now
        return now - self._last_speaker_s < self.s.echo_tail_s

    async def _drain(self) -> None:
        while self._queue:
            chunk = self._queue.popleft()
            try:
                if self.state == "wake":
                    await self._wake(chunk)
                elif self.state == "capture":
                    await self._capture(chunk)
            except GlassesError as e:
                log.warning("listening: %s", e)

    async def _wake(self, chunk: np.ndarray) -> None:
        worker = self.fw.voice
        if worker is None or worker.state != "ready" or self.fw.arbiter.suspended("wake_word"):
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
            if (await worker.vad(audio) >= self.s.speech_prob).any():
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
        scores = await worker.wake(chunk)
        self._since_wake += len(chunk)
        if self._since_wake < self.s.wake_refractory_s * RATE_HZ:
            return
        score = scores.get(self.s.wake_word, 0.0)
        threshold = self.s.wake_threshold_speaking if self.speaker_active() else self.s.wake_threshold
        if score >= threshold and self.state == "wake":
            log.info("wake word %s (%.2f)", self.s.wake_word, score)
            self._since_wake = 0
            self.on_wake()

    async def _speech_probs(self, chunk: np.ndarray) -> np.ndarray:
        worker = self.fw.voice
        if worker is not None and worker.state == "ready":
            self._vad_buf = np.concatenate([self._vad_buf, chunk])
            n = len(self._vad_buf) // VAD_CHUNK * VAD_CHUNK
            if n == 0:
                return np.zeros(0, np.float32)
            audio, self._vad_buf = self._vad_buf[:n], self._vad_buf[n:]
            fresh, self._vad_fresh = self._vad_fresh, False
            return await worker.vad(audio, reset=fresh)   # each utterance starts clean
        # No model: loudness decides, per 32 ms.
        frames = chunk[: len(chunk) // VAD_CHUNK * VAD_CHUNK].reshape(-1, VAD_CHUNK)
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        return (20 * np.log10(rms) > self.s.energy_speech_dbfs).astype(np.float32)

    async def _capture(self, chunk: np.ndarray) -> None:
        if self.speaker_active():
            return  # our own voice: neither content nor evidence of silence
        self._utterance.append(chunk)
        self._samples += len(chunk)
        if self._push_to_talk:
            if self._samples >= self.s.max_utterance_s * RATE_HZ:
                self._finish(heard=True)
            return
        for p in await self._speech_probs(chunk):
            if p >= self.s.speech_prob:
                self._speech_seen, self._silence, self._asked_early = True, 0, False
            elif self._speech_seen:
                self._silence += VAD_CHUNK
            else:
                self._waited += VAD_CHUNK
        if self._speech_seen and self.early is not None and not self._asked_early and \
                self._silence >= self.s.early_silence_s * RATE_HZ:
            self._asked_early = True
            if await self.early(np.concatenate(self._utterance)) and self.state == "capture":
                self._finish(heard=True)
                return
        if self._speech_seen and self._silence >= self.s.endpoint_silence_s * RATE_HZ:
            self._finish(heard=True)
        elif self._samples >= self.s.max_utterance_s * RATE_HZ:
            self._finish(heard=self._speech_seen)
        elif not self._speech_seen and self._waited >= self._no_speech:
            self._finish(heard=False)

    def _finish(self, heard: bool) -> None:
        audio = np.concatenate(self._utterance) if heard and self._utterance else None
        self.back_to_wake()
        self.on_utterance(audio)

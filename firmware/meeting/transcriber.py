"""Meeting transcription in the background: segments to a durable transcript, then notes.

The recorder writes `recordings/<id>/seg-NNNNN.wav` every 30 s. This service follows it:
each new stretch of audio is split into utterances (voice activity: Silero VAD on the model
worker, an energy threshold without one), each utterance is transcribed (Whisper) and its
speaker's voice embedded, and the result is appended to the recording's journal
(journal.py), one fsynced line per utterance. When the recording has ended and all of it
is transcribed, notes.py labels the speakers, summarizes, and writes `notes/<id>.md`.

Everything is resumable from the files alone: at start (and every few seconds) the
recordings are scanned, and a recording without notes continues where its journal ends. A
recording whose `info.json` has no "ended" and that is not the one being recorded now
lost power mid-meeting: it is treated as ended at its last segment.

The assistant goes first: requests are sent at PRIORITY_BACKGROUND, none is sent while
the wearer talks to the assistant or the mode allows no models (hot, asleep, capturing),
and one in flight then is cancelled and done again later.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.sealed import Sealer, SealError

from ..ports import Blocking, Clock, EventSink, MeetingModels, ModeGate
from ..tasks import spawn
from ..worker.errors import BadInput, RemoteError, RequestCancelled
from ..worker.protocol import PRIORITY_BACKGROUND
from . import journal as j
from . import notes
from .utterances import RATE_HZ, SplitSettings, energy_odds, regions

log = logging.getLogger("glasses.meeting")

LANGUAGES = ["en", "zh", "ko"]      # the languages the glasses answer in (voice/intents.py)
FREE_STATES = ("idle", "wake")      # voice-loop states in which nobody is talking to us


@dataclass(frozen=True)
class TranscriberSettings:
    poll_s: float = 2.0             # how often the recordings are looked at for new audio
    window_s: float = 30.0          # audio taken at once (a segment's worth)
    min_embed_s: float = 0.6        # shorter utterances get no voice (the model needs 0.5 s)
    asr_timeout_s: float = 300.0    # background requests wait behind the assistant's
    embed_timeout_s: float = 120.0
    retry_first_s: float = 2.0      # after a worker failure, back off from this...
    retry_max_s: float = 60.0       # ...to this
    split: SplitSettings = SplitSettings()


class Preempted(GlassesError, RuntimeError):
    """A background request gave way to the assistant (or to the mode); it runs again later."""


class Background:
    """Runs one model request at a time that anyone may interrupt with `preempt()`."""

    def __init__(self):
        self._stream = None

    async def run(self, stream) -> tuple[list, object]:
        """(the stream's items, its final value); Preempted if `preempt()` cancelled it."""
        self._stream = stream
        try:
            items = [item async for item in stream]
            return items, stream.result
        except RequestCancelled:
            raise Preempted("gave way to the assistant") from None
        finally:
            self._stream = None

    def preempt(self) -> None:
        if self._stream is not None:
            self._stream.cancel()


class Transcriber:
    """Follows `recordings/` and turns each meeting into a transcript and notes.

    `recording()` names the directory the recorder is writing now (None if none); `turns` is
    the assistant's voice loop (a statetable machine): outside `idle`/`wake` someone is
    talking to the glasses and background work waits. `sealer` opens the segments and
    seals the journal and the notes.
    """

    def __init__(self, models: MeetingModels | None, modes: ModeGate, turns, clock: Clock,
                 events: EventSink, blocking: Blocking, data_dir: Path,
                 recording: Callable[[], Path | None],
                 settings: TranscriberSettings = TranscriberSettings(), *, sealer: Sealer):
        self.models, self.modes, self.turns, self.clock = models, modes, turns, clock
        self.events, self.blocking, self.s = events, blocking, settings
        self.sealer = sealer
        self.data_dir = Path(data_dir)
        self.recording = recording
        self.background = Background()
        self.task: asyncio.Task | None = None
        self.waiting: str | None = None         # why `current` waits (`notes list` shows it)
        self.current: str | None = None         # the recording being worked on
        self._kick = asyncio.Event()
        self._progress: dict[str, j.Progress] = {}
        self._journals: dict[str, j.Journal] = {}
        self._done: set[str] = set()            # ids whose notes exist
        self._resumed: set[str] = set()
        self._unreadable: set[str] = set()      # ids whose files do not open: said once, left
        self._no_voices = False                 # the speaker model is missing: stop asking
        self._vad_model = True
        modes.subscribe(self._changed)
        turns.subscribe(self._changed)

    # Lifecycle.
    def start(self) -> None:
        if self.task is None or self.task.done():
            self.task = spawn(self._run(), name="transcriber")

    def kick(self) -> None:
        """Look at the recordings now rather than at the next poll."""
        self._kick.set()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    def _changed(self, old: str, new: str, event: str, reason: str) -> None:
        if self._blocked() is not None:
            self.background.preempt()
        else:
            self.kick()

    def _blocked(self) -> str | None:
        """Why no background request may run now, or None."""
        if self.models is None:
            return "no model worker (run with --models)"
        if self.models.state != "ready":
            return f"the model worker is {self.models.state}"
        if not self.modes.policy.llm:
            return f"models are off in {self.modes.mode} mode"
        if self.turns.state not in FREE_STATES:
            return "the assistant is in use"
        return None

    # The work loop.
    async def _run(self) -> None:
        backoff = self.s.retry_first_s
        while True:
            try:
                worked = await self._step()
                backoff = self.s.retry_first_s
            except Preempted:
                worked = False
            except GlassesError as e:
                # A crashed worker, a full disk: say so, wait, try again; nothing is lost,
                # the journal holds what was done.
                log.warning("meeting notes: %s; retrying in %.0f s", e, backoff)
                self._wait_for(f"{type(e).__name__}: {e}")
                await self.clock.asleep(backoff)
                backoff = min(self.s.retry_max_s, backoff * 2)
                continue
            if not worked:
                await self._idle()

    async def _idle(self) -> None:
        self._kick.clear()
        kicked = asyncio.ensure_future(self._kick.wait())
        slept = asyncio.ensure_future(self.clock.asleep(self.s.poll_s))
        try:
            await asyncio.wait({kicked, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            slept.cancel()

    def _wait_for(self, reason: str | None) -> None:
        if reason != self.waiting and reason is not None and self.current is not None:
            self.events.emit("notes", f"{self.current} waiting: {reason}")
        self.waiting = reason

    async def _step(self) -> bool:
        """Do one piece of work (a window of audio, or a recording's notes); False if none."""
        recordings = await self.blocking.run(self._unfinished)
        live = self.recording()
        for rec in recordings:
            is_live = live is not None and Path(live).name == rec.id and not rec.ended
            prog = self._progress.get(rec.id)
            if prog is None and rec.problem is None:
                try:
                    prog = self._progress[rec.id] = await self.blocking.run(j.progress, rec.journal)
                except SealError as e:
                    rec.problem = str(e)
            if rec.problem is not None:
                # A wrong key or a changed file: transcribing what does open would give
                # notes with holes (or none at all); it is left as it is, and said so.
                self._unreadable.add(rec.id)
                self.events.emit("fault", f"notes {rec.id} cannot be made: {rec.problem}")
                continue
            self.current = rec.id
            blocked = self._blocked()
            if blocked is not None:
                self._wait_for(blocked)
                return False
            self._wait_for(None)
            if rec.id not in self._resumed:
                # Said once per recording, and only for one a previous boot left unfinished.
                self._resumed.add(rec.id)
                if not is_live and (prog.done_s > 0 or not rec.ended):
                    why = "after a power cut" if not rec.ended else "after a restart"
                    self.events.emit("notes", f"{rec.id} resumed {why} at "
                                     f"{notes.clock_text(prog.done_s)} of "
                                     f"{notes.clock_text(rec.duration_s)}")
            if not prog.complete:
                if await self._transcribe_window(rec, prog, is_live):
                    return True
                continue            # a live meeting with nothing new yet: look at the next
            self.events.emit("notes", f"{rec.id} summarizing")
            result = await notes.make(self.models, self.background, self.blocking, self.data_dir,
                                      rec, prog, self.sealer)
            self._done.add(rec.id)
            self._progress.pop(rec.id, None)
            self._journals.pop(rec.id, None)
            self.events.emit("notes", f"{rec.id} done: {result}")
            return True
        self.current = None
        self.waiting = None
        return False

    def _unfinished(self) -> list[j.Recording]:
        """The recordings without notes, oldest first (blocking: reads the directory)."""
        # Recordings with notes are done for good: only their names are listed again.
        for rec_id in j.ids(self.data_dir):
            if rec_id not in self._done and notes.exists(self.data_dir, rec_id):
                self._done.add(rec_id)
        return j.recordings(self.data_dir, self.sealer, frozenset(self._done | self._unreadable))

    async def _transcribe_window(self, rec: j.Recording, prog: j.Progress, live: bool) -> bool:
        total = rec.duration_s
        start = prog.done_s
        if total - start < 512 / RATE_HZ:          # less than one VAD chunk left
            if live:
                return False
            await self._append(rec, prog, {"complete": True, "duration_s": round(total, 3)})
            prog.complete = True
            return True
        end = min(total, start + self.s.window_s)
        more = live or end < total
        audio = await self.blocking.run(j.read_audio, rec, start, end)
        odds = await self._odds(audio)
        spans, settled = regions(odds, self.s.split, more_to_come=more)
        if not spans and settled == 0:
            return False                           # speech runs on into audio not yet written
        for a, b in spans:
            await self._utterance(rec, prog, audio[a:b], start + a / RATE_HZ, start + b / RATE_HZ)
        prog.done_s = start + settled / RATE_HZ
        await self._append(rec, prog, {"done_s": round(prog.done_s, 3)})
        self.events.emit("notes", f"{rec.id} transcribing {notes.clock_text(prog.done_s)} of "
                         f"{notes.clock_text(total)}{' so far' if live else ''}")
        return True

    async def _odds(self, audio: np.ndarray) -> np.ndarray:
        if self._vad_model:
            try:
                # The model worker's own VAD: the voice worker's is busy following the
                # microphones, and a reset here would break its stream.
                return await self.models.vad(audio, reset=True, timeout_s=60.0)
            except GlassesError as e:
                if not _absent(e):
                    raise
                log.warning("no VAD model for meetings (%s); using the energy of the audio", e)
                self._vad_model = False
        return energy_odds(audio, self.s.split)

    async def _utterance(self, rec, prog, audio, start_s: float, end_s: float) -> None:
        stream = self.models.transcribe_stream(audio, language=LANGUAGES,
                                               priority=PRIORITY_BACKGROUND,
                                               timeout_s=self.s.asr_timeout_s)
        _, heard = await self.background.run(stream)
        text = " ".join(heard["text"].split())
        if not text:
            return
        record = {"start": round(start_s, 3), "end": round(end_s, 3), "text": text,
                  "language": heard.get("language"), "language_prob": heard.get("language_prob"),
                  "embedding": await self._voice(audio)}
        await self._append(rec, prog, record)
        prog.utterances.append(record)
        prog.done_s = max(prog.done_s, record["end"])

    async def _voice(self, audio: np.ndarray) -> list[float] | None:
        if self._no_voices or len(audio) < self.s.min_embed_s * RATE_HZ:
            return None
        try:
            vec = await self.models.embed_speaker(audio, timeout_s=self.s.embed_timeout_s,
                                                  priority=PRIORITY_BACKGROUND)
        except BadInput:
            return None                             # too little speech in it to tell
        except GlassesError as e:
            if not _absent(e):
                raise
            log.warning("no speaker model (%s); notes will not tell voices apart", e)
            self._no_voices = True
            return None
        return [round(float(x), 4) for x in np.asarray(vec).reshape(-1)]

    async def _append(self, rec: j.Recording, prog: j.Progress, record: dict) -> None:
        journal = self._journals.get(rec.id)
        if journal is None:
            # One Journal per recording: it checks for a torn tail once, not per line.
            journal = self._journals[rec.id] = rec.journal
        await self.blocking.run(journal.append, record)


def _absent(e: GlassesError) -> bool:
    """Whether a worker error means the model is not there (rather than a passing failure)."""
    from glasses_firmware.models.verify import ModelMissing
    return isinstance(e, ModelMissing) or (
        isinstance(e, RemoteError) and e.kind in ("ModelNotInstalled", "ModelMissing", "ConfigError"))

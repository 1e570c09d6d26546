"""The voice assistant: the voice loop's table (loop.py) driven by its event sources.

Sources: the segmenter (wake word, pause, utterance, no speech), the action button (tap,
push-to-talk), the console (`ask`), the mode machine (listening allowed or not) and the
turn itself (recognized, answered, spoken). Every change goes through `VoiceLoop.fire`;
what entering a state does is in `_entered`. A turn: the utterance is recognized
(recognizer.py), a device action runs through the router (router.py) or the LLM answers
(conversation.py), the answer is spoken (speech.py) and a follow-up window listens
without the wake word. The wake word or a button interrupts speech and generation.
"""

import asyncio
import logging
import time
from pathlib import Path

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.wavio import wav_bytes

from ..power import modes as m
from ..tasks import spawn
from . import loop as v
from .conversation import LlmUnavailable
from .intents import Intent, match
from .recognizer import Recognizer
from .actions import Outcome
from .segmenter import ListenSettings, Segmenter

log = logging.getLogger("glasses.voice")

FOLLOW_UP_S = 5.0
CONVERSE_QUIET_S = 10.0    # translating: a quiet spell starts the capture afresh, no more
WAKE_PRE_ROLL_S = 0.25     # before a wake word: the word itself is not the question
SOURCES = {"wake": "wake word", "tap": "button", "ptt_down": "push-to-talk"}


class AssistantOff(GlassesError, RuntimeError):
    """The mode allows no assistant now (the glasses are asleep or the battery is empty)."""


class Assistant:
    """Turns voice events into turns; `start()` once the loop runs."""

    def __init__(self, *, hub, voice, models, claims, modes, clock, events, speech, earcons,
                 router, conversation, blocking, data_dir: Path, touch=lambda: None,
                 settings: ListenSettings = ListenSettings(), asr_confirms: bool = True,
                 translator=None):
        self.modes, self.clock, self.events = modes, clock, events
        # Conversation translation (translator.py): while it is on, the loop waits in
        # `converse` and every utterance is a translation turn.
        self.translator = translator
        if translator is not None:
            translator.subscribe(self._translation_switched)
        self.speech, self.earcons, self.router = speech, earcons, router
        self.conversation, self.blocking, self.touch = conversation, blocking, touch
        self.last_utterance = Path(data_dir) / "logs" / "last-utterance.wav"
        self.loop = v.VoiceLoop()
        self.loop.subscribe(self._entered)
        self.hub = hub
        self.segmenter = Segmenter(voice, claims, clock, self._voice_event, self._poll, settings,
                                   is_speaking=lambda: self.speech.busy)
        # A transcript begun at the last pause stands if no more than the endpoint's
        # silence followed it (plus a chunk of arrival jitter).
        self.recognizer = Recognizer(voice, models, speculate_tail_s=settings.endpoint_silence_s
                                     - settings.early_silence_s + 0.15, asr_confirms=asr_confirms)
        self.turn: asyncio.Task | None = None
        self.turns = 0
        self.last_timing: dict = {}
        self._audio = None                # the utterance on its way to RECOGNIZE
        self._listen = (None, False)      # (pre-roll s, push-to-talk) for the next LISTEN
        modes.subscribe(self._mode_changed)

    @property
    def state(self) -> str:
        return self.loop.state

    def start(self) -> None:
        if self.modes.policy.listening:
            self.loop.fire("mode_on", self.modes.mode)

    def _poll(self, period_s: float | None) -> None:
        if period_s is None:
            self.hub.unsubscribe("segmenter")
        else:
            self.hub.subscribe("segmenter", self.segmenter.feed, period_s)

    # Event sources.
    def _mode_changed(self, old: str, new: str, event: str, reason: str) -> None:
        if m.POLICY[new].listening:
            if self.loop.state == v.IDLE:
                self.loop.fire("mode_on", new)
        else:
            self.loop.fire("mode_off", f"{new} mode")

    def trigger(self, kind: str) -> None:
        """A wake word, a tap or a held button: listen (interrupting an answer)."""
        source = SOURCES[kind]
        self._listen = (WAKE_PRE_ROLL_S if kind == "wake" else None, kind == "ptt_down")
        idle_ears = self.loop.state in (v.WAKE, v.FOLLOW_UP, v.LISTEN)
        self.loop.fire(kind if idle_ears else "barge_in", source)

    def gesture(self, button: str, gesture: str) -> None:
        if button != "action":
            return
        if gesture == "click":
            self.trigger("tap")
        elif gesture == "long":
            self.trigger("ptt_down")
        elif gesture == "release" and self.loop.state == v.LISTEN and self._listen[1]:
            self.loop.fire("ptt_up", "button released")

    async def _voice_event(self, kind: str, audio) -> None:
        """From the segmenter, in order."""
        if kind == "wake":
            self.trigger("wake")
        elif kind == "pause":
            if not self.loop.fire("pause", "short pause") or self.loop.state == v.CONVERSE:
                return                        # translating: no commands, no early transcript
            if await self.recognizer.at_pause(
                    audio, commands=self.conversation.translate_to is None):
                self.segmenter.end_now()      # a confident device command: act now
        elif kind == "utterance":
            self._audio = audio
            self.loop.fire("utterance", f"{len(audio) / 16000:.1f} s of speech")
        elif kind == "no_speech":
            self.loop.fire("no_speech", "nothing said")

    async def ask(self, text: str) -> str:
        """A typed turn (console `ask`): same routing, spoken reply; returns the reply text."""
        outcome, _ = await self._typed(match(text), {})
        return outcome.say

    async def act(self, action: str, **args) -> Outcome:
        """A router action typed at the console (`read`), run as a turn: its reply spoken.

        A refusal is spoken as it would be for a voice command, and raised for the console.
        """
        outcome, error = await self._typed(Intent(action, action, "en"), args)
        if error is not None:
            raise error
        return outcome

    async def _typed(self, intent: Intent, args: dict):
        if not self.loop.fire("ask", "typed"):
            raise AssistantOff(f"the assistant is off in {self.modes.mode} mode; "
                               "put the glasses on or charge them")
        self.turn = spawn(self._typed_turn(intent, args, self.turns), name="turn")
        try:
            return await asyncio.shield(self.turn)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise          # our caller is being cancelled, not just the turn
            return Outcome("(interrupted)", ("(interrupted)",)), None

    # What entering a state does.
    def _entered(self, old: str, new: str, event: str, reason: str) -> None:
        if old == new and event in ("pause", "ptt_up"):
            if event == "ptt_up":
                self.segmenter.release()      # it ends the utterance with what it has
            return
        if new == v.IDLE:
            self.interrupt()
            self.segmenter.stop()
            if self.translator is not None:
                self.translator.stop(f"{self.modes.mode} mode")
        elif new == v.WAKE:
            self.segmenter.watch()
            if self.translator is not None and self.translator.active:
                # Switched on while a turn ran: translating resumes now that it is over.
                asyncio.get_running_loop().call_soon(self._resume_translating)
            if old in v.ACTIVE:
                if event == "no_speech":
                    self.events.emit("assistant", "heard nothing")
                    self.earcons.earcon("listen_end")
                if self.modes.mode == m.INTERACTIVE:
                    self.modes.fire("turn_done", "turn over")
        elif new == v.LISTEN:
            self._begin_turn(reason)
            self.events.emit("assistant", f"listening ({reason})")
            self.earcons.earcon("listen_start")
            pre_roll_s, push_to_talk = self._listen
            self.segmenter.capture(pre_roll_s=pre_roll_s, push_to_talk=push_to_talk)
        elif new == v.RECOGNIZE:
            self.last_timing = {"heard_at": time.perf_counter()}
            self.speech.first_audio_at = None
            self.earcons.earcon("listen_end")
            self.touch()
            audio, self._audio = self._audio, None
            turn = self._translation_turn if old == v.CONVERSE else self._voice_turn
            self.turn = spawn(turn(audio, self.turns), name="turn")
        elif new == v.RESPOND and event == "ask":
            self._begin_turn("ask")
            if self.segmenter.state == "capture":
                self.segmenter.watch()        # a typed question ends any listening
        elif new == v.FOLLOW_UP:
            self.events.emit("assistant", "follow-up window")
            self.segmenter.capture(pre_roll_s=0, no_speech_s=FOLLOW_UP_S)
        elif new == v.CONVERSE:
            if old != v.CONVERSE:
                self.events.emit("assistant", f"translating {self.translator.describe()}")
                if self.modes.mode != m.INTERACTIVE and self.modes.allowed("wake"):
                    self.modes.fire("wake", "conversation translation")
            # No pre-roll: what the ring holds now is the translation just played.
            self.segmenter.capture(pre_roll_s=0, no_speech_s=CONVERSE_QUIET_S)

    def _begin_turn(self, source: str) -> None:
        self.interrupt()
        self.recognizer.forget()
        self.turns += 1
        self.touch()
        if self.modes.mode != m.INTERACTIVE and self.modes.allowed("wake"):
            self.modes.fire("wake", source)

    def interrupt(self) -> None:
        """Barge-in: stop speech and generation at once."""
        self.conversation.cancel()
        if self.translator is not None:
            self.translator.cancel()
        if self.turn is not None and not self.turn.done() and self.turn is not asyncio.current_task():
            self.turn.cancel()
        self.speech.stop()

    # Turns.
    async def _voice_turn(self, audio, turn: int) -> None:
        # Kept for "what did it hear?": the last utterance, next to the log.
        await self.blocking.run(write_atomic, self.last_utterance, wav_bytes(audio, 16000))
        t0 = time.perf_counter()
        try:
            intent = await self.recognizer.recognize(
                audio, commands=self.conversation.translate_to is None)
        except GlassesError as e:
            intent = e
        self.last_timing["recognize_ms"] = (time.perf_counter() - t0) * 1000
        heard = f'heard "{intent.text}"' if isinstance(intent, Intent) else f"not recognized: {intent}"
        self.events.emit("assistant", heard)
        if not self.loop.fire("recognized", heard):
            return
        await self.respond(intent)
        await self._played(turn, "spoken")

    async def _translation_turn(self, audio, turn: int) -> None:
        """An utterance while translating: heard in either language, translated, spoken."""
        await self.blocking.run(write_atomic, self.last_utterance, wav_bytes(audio, 16000))
        try:
            heard = await self.translator.hear(audio)
        except GlassesError as e:
            heard = e
        summary = f"{heard.language} {heard.text[:60]!r}" if not isinstance(heard, Exception) \
            else f"not recognized: {heard}"
        if not self.loop.fire("recognized", f"to translate: {summary}"):
            return
        # The utterance ended the endpoint's silence before the segmenter said so.
        speech_end = self.last_timing["heard_at"] - self.segmenter.s.endpoint_silence_s
        await self.translator.respond(heard, speech_end, audio)
        await self._played(turn, "spoken")

    async def _played(self, turn: int, event: str) -> None:
        """The reply is queued: once it has played, the turn is over (`event`)."""
        if self.loop.fire("answered", "reply queued"):
            await self.speech.drain()
            self.touch()
            if turn == self.turns:       # not if a new turn has started meanwhile
                self._turn_over(event)

    def _turn_over(self, event: str) -> None:
        if self.translator is not None and self.translator.active:
            self.loop.fire("converse_on", "translating")
        else:
            self.loop.fire(event, "answer played")

    def _translation_switched(self, active: bool) -> None:
        if active:
            self.loop.fire("converse_on", "translation switched on")   # if waiting
        elif self.loop.state == v.CONVERSE:
            self.loop.fire("converse_off", "translation switched off")

    def _resume_translating(self) -> None:
        if self.translator.active and self.loop.state == v.WAKE:
            self.loop.fire("converse_on", "translating again")

    async def _typed_turn(self, intent: Intent, args: dict, turn: int):
        reply = await self.respond(intent, args)
        if self.loop.fire("answered", "reply queued"):
            spawn(self._finish_typed(turn), name="typed-turn-end")
        return reply

    async def _finish_typed(self, turn: int) -> None:
        await self.speech.drain()
        if turn == self.turns:       # not if a new turn has started meanwhile
            self._turn_over("done")

    async def respond(self, intent, args: dict | None = None
                      ) -> tuple[Outcome, GlassesError | None]:
        """Act on an intent (or a recognition failure) and queue the spoken reply.

        Returns what was said and printed, and the error that was apologised for, if any.
        """
        self.conversation.timing = self.last_timing     # its first token lands in this turn's
        error = None
        try:
            if isinstance(intent, Exception):
                raise intent
            if intent.action is not None:
                self.events.emit("assistant", f"command {intent.action}")
                outcome = await self.router.run(intent.action, **{**intent.args, **(args or {})})
                await self.speech.say(outcome.say, outcome.language)
            else:
                reply = await self.conversation.answer(intent)
                outcome = Outcome(reply, tuple(reply.splitlines()))
        except LlmUnavailable as e:
            outcome = Outcome(str(e), (str(e),))
            self.events.emit("assistant", f"no answer: {e}")
            await self.speech.say(outcome.say)
        except GlassesError as e:
            error = e
            outcome = Outcome(f"Sorry, {e}", (f"Sorry, {e}",))
            self.events.emit("assistant", f"failed: {e}")
            # An error meant for the wearer (a payment refused, and why) is said as it is.
            await self.speech.say(getattr(e, "say", None) or "Sorry, that did not work.")
        return outcome, error

    async def close(self) -> None:
        self.interrupt()
        self.segmenter.stop()
        if self.turn is not None:
            await asyncio.gather(self.turn, return_exceptions=True)

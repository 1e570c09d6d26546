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

from drivers.atomic import write_atomic
from drivers.errors import GlassesError
from drivers.wavio import wav_bytes

from ..power import modes as m
from ..tasks import spawn
from . import loop as v
from .conversation import LlmUnavailable
from .intents import Intent, match
from .recognizer import Recognizer
from .segmenter import ListenSettings, Segmenter

log = logging.getLogger("glasses.voice")

FOLLOW_UP_S = 5.0
WAKE_PRE_ROLL_S = 0.25     # before a wake word: the word itself is not the question
SOURCES = {"wake": "wake word", "tap": "button", "ptt_down": "push-to-talk"}


class AssistantOff(GlassesError, RuntimeError):
    """The mode allows no assistant now (the glasses are asleep or the battery is empty)."""


class Assistant:
    """Turns voice events into turns; `start()` once the loop runs."""

    def __init__(self, hub, voice, models, claims, modes, clock, events, speech, earcons,
                 router, conversation, blocking, data_dir: Path, touch=lambda: None,
                 settings: ListenSettings = ListenSettings(), asr_confirms: bool = True):
        self.modes, self.clock, self.events = modes, clock, events
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
            if self.loop.fire("pause", "short pause") and await self.recognizer.at_pause(
                    audio, commands=self.conversation.translate_to is None):
                self.segmenter.end_now()      # a confident device command: act now
        elif kind == "utterance":
            self._audio = audio
            self.loop.fire("utterance", f"{len(audio) / 16000:.1f} s of speech")
        elif kind == "no_speech":
            self.loop.fire("no_speech", "nothing said")

    async def ask(self, text: str) -> str:
        """A typed turn (console `ask`): same routing, spoken reply; returns the reply text."""
        if not self.loop.fire("ask", "typed"):
            raise AssistantOff(f"the assistant is off in {self.modes.mode} mode; "
                               "put the glasses on or charge them")
        self.turn = spawn(self._typed_turn(text, self.turns), name="turn")
        try:
            return await asyncio.shield(self.turn)
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise          # our caller is being cancelled, not just the turn
            return "(interrupted)"

    # What entering a state does.
    def _entered(self, old: str, new: str, event: str, reason: str) -> None:
        if old == new and event in ("pause", "ptt_up"):
            if event == "ptt_up":
                self.segmenter.release()      # it ends the utterance with what it has
            return
        if new == v.IDLE:
            self.interrupt()
            self.segmenter.stop()
        elif new == v.WAKE:
            self.segmenter.watch()
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
            self.turn = spawn(self._voice_turn(audio, self.turns), name="turn")
        elif new == v.RESPOND and event == "ask":
            self._begin_turn("ask")
            if self.segmenter.state == "capture":
                self.segmenter.watch()        # a typed question ends any listening
        elif new == v.FOLLOW_UP:
            self.events.emit("assistant", "follow-up window")
            self.segmenter.capture(pre_roll_s=0, no_speech_s=FOLLOW_UP_S)

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
        if self.loop.fire("answered", "reply queued"):
            await self.speech.drain()
            self.touch()
            if turn == self.turns:
                self.loop.fire("spoken", "answer played")

    async def _typed_turn(self, text: str, turn: int) -> str:
        reply = await self.respond(match(text))
        if self.loop.fire("answered", "reply queued"):
            spawn(self._finish_typed(turn), name="typed-turn-end")
        return reply

    async def _finish_typed(self, turn: int) -> None:
        await self.speech.drain()
        if turn == self.turns:       # not if a new turn has started meanwhile
            self.loop.fire("done", "answer played")

    async def respond(self, intent) -> str:
        """Act on an intent (or a recognition failure) and queue the spoken reply."""
        self.conversation.timing = self.last_timing     # its first token lands in this turn's
        try:
            if isinstance(intent, Exception):
                raise intent
            if intent.action is not None:
                self.events.emit("assistant", f"command {intent.action}")
                reply = (await self.router.run(intent.action)).say
                await self.speech.say(reply)
            else:
                reply = await self.conversation.answer(intent)
        except LlmUnavailable as e:
            reply = str(e)
            self.events.emit("assistant", f"no answer: {e}")
            await self.speech.say(reply)
        except GlassesError as e:
            reply = f"Sorry, {e}"
            self.events.emit("assistant", f"failed: {e}")
            await self.speech.say("Sorry, that did not work.")
        return reply

    async def close(self) -> None:
        self.interrupt()
        self.segmenter.stop()
        if self.turn is not None:
            await asyncio.gather(self.turn, return_exceptions=True)

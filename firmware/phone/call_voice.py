"""The call's words, heard without the wake word: "answer" or "reject" while it rings,
"hang up" while it runs.

During a call the wake word is suspended (the wearer talks to the caller), so the call
listens for itself: a segmenter of its own over the audio hub cuts utterances, the voice
worker's command grammar matches them against the call's phrases only, and a match runs
the router's action (the same the button and the console run). A phrase counts only when
its words cover the utterance (the recognizer's threshold), so a sentence to the caller
that contains "hang up" is talk, not a command. Without a voice worker it does nothing.
"""

import logging

from glasses_firmware.drivers.errors import GlassesError

from ..voice.recognizer import COMMAND_MIN_COVERAGE
from ..voice.segmenter import Segmenter

log = logging.getLogger("glasses.phone.calls")

# What is heard during a call: the short forms of intents.py's phrases. A grammar that holds
# "hang up the call" hears a plain "hang up" as the partial "hang up the", no phrase at all.
HEARD = {"call_answer": ("answer", "answer the call", "pick up"),
         "call_reject": ("reject", "decline", "reject the call"),
         "call_hangup": ("hang up", "end the call", "end call")}
WORDS = {"ringing": ("call_answer", "call_reject", "call_hangup"), "active": ("call_hangup",)}
LISTEN_S = 3600.0      # one capture lasts until someone speaks


class CallVoice:
    """Listens while `calls` rings or runs; `calls.listeners` tells it when."""

    def __init__(self, *, calls, voice, claims, clock, hub, router, events):
        self.voice, self.hub, self.router, self.events = voice, hub, router, events
        self.allowed: tuple[str, ...] = ()
        self.segmenter = Segmenter(voice, claims, clock, self._event, self._poll)
        calls.listeners.append(self._call_changed)

    def _poll(self, period_s: float | None) -> None:
        if period_s is None or not self.allowed:
            self.hub.unsubscribe("call-voice")
        else:
            self.hub.subscribe("call-voice", self.segmenter.feed, period_s)

    def _call_changed(self, state: str, who: str) -> None:
        self.allowed = WORDS.get(state, ())
        if self.allowed and self.voice is not None:
            self.segmenter.capture(pre_roll_s=0, no_speech_s=LISTEN_S)
        else:
            self.segmenter.stop()

    async def _event(self, kind: str, audio) -> None:
        if kind == "pause":
            return                        # the utterance goes on; wait for all of it
        if kind == "utterance" and self.allowed:
            await self._heard(audio)
        if self.allowed:                  # listen again, for as long as the call lasts
            self.segmenter.capture(pre_roll_s=0, no_speech_s=LISTEN_S)

    async def _heard(self, audio) -> None:
        phrases = sorted(p for action in self.allowed for p in HEARD[action])
        try:
            got = await self.voice.grammar(audio, phrases)
        except GlassesError as e:
            log.warning("call voice: %s", e)
            return
        action = next((a for a in self.allowed if got["text"] in HEARD[a]), None)
        log.info("call voice: %r coverage %.2f", got["text"], got.get("coverage", 0.0))
        if action is None or got.get("coverage", 0.0) < COMMAND_MIN_COVERAGE:
            return
        self.events.emit("call", f'heard "{got["text"]}"')
        try:
            await self.router.run(action)
        except GlassesError as e:
            self.events.emit("call", f"{action} refused: {e}")

"""Open questions and translation: the LLM's answer, spoken while it is generated.

The mode decides whether the LLM may run at all (its policy's `llm` flag: off when the
glasses are too hot, or while a capture holds the board): asked then, the wearer hears why,
and an answer being generated when the mode changes is cancelled.
"""

import collections
import logging
import re
import time

from glasses_firmware.drivers.errors import GlassesError

from ..ports import EventSink, LanguageModels, ModeGate, Speaks
from ..worker.errors import RequestCancelled, not_ready
from ..worker.protocol import PRIORITY_BACKGROUND
from .intents import LANGUAGES, Intent

log = logging.getLogger("glasses.voice")

SYSTEM_PROMPT = ("You are the voice assistant in a pair of smart glasses. Answer in one or two "
                 "short spoken sentences, without lists or markdown, in {language}.")
TRANSLATE_PROMPT = ("Translate what the user says into {language}. Reply with the translation "
                    "only.")
MEMORY_TURNS = 4
MAX_ANSWER_TOKENS = 60
FIRST_CHUNK_CHARS = 16
NO_ANSWER = "Sorry, I have no answer to that."
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


class LlmUnavailable(GlassesError, RuntimeError):
    """The LLM may not or cannot run now; the message says why, fit to be spoken."""


class Conversation:
    """Answers questions with the LLM and speaks them; `translate_to` turns it into a translator."""

    def __init__(self, models: LanguageModels | None, speech: Speaks, modes: ModeGate,
                 events: EventSink):
        self.models, self.speech, self.modes, self.events = models, speech, modes, events
        self.memory: collections.deque = collections.deque(maxlen=2 * MEMORY_TURNS)
        self.translate_to: str | None = None
        self._stream = None
        self.timing: dict = {}
        modes.subscribe(self._mode_changed)

    def _mode_changed(self, old: str, new: str, event: str, reason: str) -> None:
        if not self.modes.policy.llm and self._stream is not None:
            log.info("answer cancelled: no LLM in %s mode", new)
            self.cancel()

    async def warm_up(self) -> None:
        """Prefill the English system prompt once, so the first question reuses its cache."""
        if self.models is None or not self.modes.policy.llm:
            return
        system = SYSTEM_PROMPT.format(language=LANGUAGES["en"])
        try:
            await self.models.generate("Hello", system=system, max_tokens=1,
                                       priority=PRIORITY_BACKGROUND).wait()
        except GlassesError as e:
            log.info("LLM warm-up skipped: %s", e)

    def cancel(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    def check(self) -> None:
        """Raise LlmUnavailable if an answer cannot be generated now, saying why."""
        if not self.modes.policy.llm:
            why = "the glasses are too hot" if self.modes.mode == "HOT" else \
                f"the language model is off in {self.modes.mode} mode"
            raise LlmUnavailable(f"I can't answer questions right now: {why}. "
                                 "Device commands still work.")
        if self.models is None:
            raise LlmUnavailable("the language model is not running; start with --models")
        if self.models.state != "ready":
            raise LlmUnavailable(not_ready(self.models, "the language model"))

    async def answer(self, intent: Intent) -> str:
        """Generate and speak the answer to `intent.text`; returns the whole answer."""
        self.check()
        if self.translate_to:
            language = self.translate_to
            system = TRANSLATE_PROMPT.format(language=LANGUAGES[language])
            history = []
        else:
            language = intent.language
            system = SYSTEM_PROMPT.format(language=LANGUAGES[language])
            history = list(self.memory)
        t0 = time.perf_counter()
        self._stream = self.models.generate(
            messages=history + [{"role": "user", "content": intent.text}],
            system=system, max_tokens=MAX_ANSWER_TOKENS)
        answer, pending, first = "", "", True
        try:
            async for piece in self._stream:
                if first:
                    self.timing["llm_first_token_ms"] = (time.perf_counter() - t0) * 1000
                    first = False
                answer += piece
                pending = await self._speak_ready(pending + piece, language)
        except RequestCancelled:
            self.check()      # cancelled because the mode changed: say why
            raise
        finally:
            self._stream = None
        if pending.strip():
            await self.speech.say(pending, language)
        if not answer.strip():
            # A model that produced nothing speakable must not leave the wearer in silence.
            answer = NO_ANSWER
            await self.speech.say(answer)
        if not self.translate_to:
            self.memory.extend([{"role": "user", "content": intent.text},
                                {"role": "assistant", "content": answer}])
        self.events.emit("assistant", f"answered ({len(answer)} chars)")
        return answer

    async def _speak_ready(self, pending: str, language: str) -> str:
        """Speak what of `pending` is ready; returns the rest."""
        *done, pending = SENTENCE_END.split(pending)
        for sentence in (s for s in done if s.strip()):
            await self.speech.say(sentence, language)
        # The first words go out at a clause break (or after a few words) so speech starts
        # early; later ones wait for a sentence end (or a long run-on).
        limit = FIRST_CHUNK_CHARS if self.speech.first_audio_at is None else 160
        cut = max(pending.rfind(" "), pending.rfind(","), pending.rfind("，"))
        if len(pending) > limit and cut > 0:
            await self.speech.say(pending[:cut + 1], language)
            pending = pending[cut + 1:]
        elif len(pending) > 2 * limit:
            await self.speech.say(pending, language)
            pending = ""
        return pending

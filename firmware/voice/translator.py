"""Conversation translation: two languages, both directions, no wake word between turns.

While it is on (`translate on en zh`, or "translate between English and Chinese"), the voice
loop stays in its `converse` state and hands every utterance here. One Whisper pass
identifies the language among the two (and English, which the stop commands are in) and,
with the translate task, already gives English; English goes to Chinese or Korean through
the LLM. The translation is spoken in the target language's voice and printed:

    EVT caption en: Where is the train station?
    EVT caption en->zh: 火车站在哪里？
    EVT caption zh->en: I want a cup of coffee.
    EVT caption zh: 我想喝一杯咖啡            (after the translation: see `_caption_source`)
    EVT translate en->zh 1.31 s from end of speech (asr 0.52 s, llm 0.38 s, voice 0.09 s)

Measured choices (docs/translation.md): the translate task rather than a transcript sent
to the LLM for zh/ko -> English; three worked examples in the LLM's prompt.
"""

import collections
import logging
import re
import statistics
import time
from dataclasses import dataclass

from glasses_firmware.drivers.errors import GlassesError

from ..ports import EventSink, LanguageModels, ModeGate, Speaks
from ..tasks import spawn
from ..worker.errors import RequestCancelled
from ..worker.protocol import PRIORITY_BACKGROUND
from .intents import LANGUAGES, action_of

log = logging.getLogger("glasses.translate")

SYSTEM_PROMPT = ("You are a translator. Translate everything the user says into {target}. "
                 "Output only the {target} translation, nothing else.")
# The 0.5B model answers a bare question instead of translating it ("Where is the bathroom?"
# -> "The bathroom is in the living room."); worked examples keep it translating: one a
# question, one a statement with a noun it must not leave in English ("museum" stayed
# English without it). Examples share no content with everyday requests: a "ticket" leaked
# into "How much does this cost?", a "nine o'clock" into "What time does the museum open?".
EXAMPLES = {
    ("en", "zh"): (("Where is the hotel?", "酒店在哪里？"), ("I don't understand.", "我不明白。"),
                   ("I am afraid of dogs.", "我怕狗。")),
    ("en", "ko"): (("Where is the hotel?", "호텔이 어디에 있어요?"),
                   ("I don't understand.", "이해가 안 돼요."), ("I am afraid of dogs.", "저는 개가 무서워요.")),
    ("zh", "en"): (("酒店在哪里？", "Where is the hotel?"), ("我不明白。", "I don't understand."),
                   ("我怕狗。", "I am afraid of dogs.")),
    ("ko", "en"): (("호텔이 어디에 있어요?", "Where is the hotel?"),
                   ("이해가 안 돼요.", "I don't understand."), ("저는 개가 무서워요.", "I am afraid of dogs.")),
}
# What the model puts before a translation when it does not stop at the translation.
_PREFIX = re.compile(r"^\s*(translation|translated|chinese|korean|english|中文|翻译|译文|번역)"
                     r"\s*[:：]\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’「」『』《》"
_TRAILING_ROMANIZATION = re.compile(r"\s*\([^()\u4e00-\u9fff\uac00-\ud7a3]*\)\s*$")

STOP_ACTIONS = ("converse_off", "cancel")   # said in English while translating: stop
# Whisper's probability (over all its languages) of the one it chose among the candidates:
# under this, the speech is taken as neither. espeak-ng French scored 0.08 as English and
# Korean 0.06 as Chinese; but espeak English scored 0.23-0.96 and Mandarin read from pinyin
# 0.06-0.96, so the bar is low: a stray sentence translated costs less than a turn lost.
MIN_LANGUAGE_PROB = 0.1
LLM_TIMEOUT_S = 20.0
KEEP_TURNS = 50


class TranslateError(GlassesError, ValueError):
    """Translation cannot start or run as asked; the message says why and what to do."""


def script_ok(text: str, language: str) -> bool:
    """Whether `text` is written in `language`'s script (a translation, not an echo)."""
    han = any("\u4e00" <= c <= "\u9fff" for c in text)
    hangul = any("\uac00" <= c <= "\ud7a3" for c in text)
    if language == "zh":
        return han
    if language == "ko":
        return hangul
    return not han and not hangul and any(c.isalpha() for c in text)


def clean(raw: str, target: str) -> str:
    """The translation in what the model wrote, or "" if it wrote something else.

    The small model sometimes adds a label, quotes, a romanization in brackets, or a second
    line of commentary: the first line is the translation, the rest is dropped.
    """
    line = next((x for x in raw.strip().splitlines() if x.strip()), "")
    line = _PREFIX.sub("", line).strip().strip(_QUOTES).strip()
    if target in ("zh", "ko"):
        line = _TRAILING_ROMANIZATION.sub("", line)
    return line if script_ok(line, target) else ""


def messages(text: str, source: str, target: str) -> tuple[str, list[dict]]:
    """(system prompt, chat messages) asking the LLM for `text` in `target`."""
    shots = []
    for said, meant in EXAMPLES.get((source, target), ()):
        shots += [{"role": "user", "content": said}, {"role": "assistant", "content": meant}]
    return (SYSTEM_PROMPT.format(target=LANGUAGES[target]),
            shots + [{"role": "user", "content": text}])


@dataclass(frozen=True)
class Heard:
    """One Whisper pass over an utterance."""

    text: str                 # English when `task` is translate, else what was said
    language: str | None      # the language Whisper chose among the candidates
    probability: float        # Whisper's probability of that language
    task: str
    asr_s: float


class Translator:
    """Conversation translation between `pair`; `start`, `stop`, then `hear` + `respond` per turn.

    Subscribers (`subscribe(callback(active: bool))`) hear when it is switched on or off:
    the assistant moves its voice loop accordingly.
    """

    def __init__(self, models: LanguageModels | None, speech: Speaks, modes: ModeGate,
                 events: EventSink, via_whisper: bool = True):
        self.models, self.speech, self.modes, self.events = models, speech, modes, events
        # zh/ko -> English by Whisper's translate task (one pass) rather than a transcript
        # the LLM translates: as good on the sentence set, 0.4-0.7 s sooner, and it works
        # when the mode forbids the LLM (too hot) (docs/translation.md).
        self.via_whisper = via_whisper
        self.pair: tuple[str, str] | None = None
        self.turns: collections.deque = collections.deque(maxlen=KEEP_TURNS)
        self._listeners: list = []
        self._stream = None

    # Switching it on and off.
    @property
    def active(self) -> bool:
        return self.pair is not None

    def subscribe(self, callback) -> None:
        self._listeners.append(callback)

    def start(self, first: str, second: str) -> None:
        """Translate between two of LANGUAGES; TranslateError if not possible."""
        for code in (first, second):
            if code not in LANGUAGES:
                raise TranslateError(f"no language '{code[:10]}'; choose two of "
                                     f"{', '.join(LANGUAGES)}")
        if first == second:
            raise TranslateError(f"translate between two different languages, not {first} "
                                 f"and {second}")
        if self.models is None:
            raise TranslateError("translation needs the speech and language models; "
                                 "run with --models")
        if not self.modes.policy.listening:
            raise TranslateError(f"the microphones are off in {self.modes.mode} mode; "
                                 "put the glasses on first")
        self.pair = (first, second)
        self.turns.clear()
        self.events.emit("translate", f"on {first} {second}")
        self._tell(True)

    def stop(self, reason: str = "stopped") -> bool:
        """Switch translation off; False if it was off."""
        if self.pair is None:
            return False
        self.pair = None
        self.cancel()
        self.events.emit("translate", f"off ({reason})")
        self._tell(False)
        return True

    def _tell(self, active: bool) -> None:
        for callback in list(self._listeners):
            callback(active)

    def cancel(self) -> None:
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    def describe(self) -> str:
        if self.pair is None:
            return "off"
        return f"{LANGUAGES[self.pair[0]]} and {LANGUAGES[self.pair[1]]}"

    def status(self) -> dict:
        done = [t["latency_s"] for t in self.turns if t.get("latency_s") is not None]
        return {"on": self.active, "languages": list(self.pair or ()), "turns": len(self.turns),
                "median_latency_s": round(statistics.median(done), 3) if done else None,
                "last": self.turns[-1] if self.turns else None}

    # A turn.
    def candidates(self) -> list[str]:
        # English too, whatever the pair: the commands that stop translating are English.
        return list(dict.fromkeys([*self.pair, "en"]))

    async def hear(self, audio) -> Heard:
        """The utterance's language among the candidates and its text (English if translated)."""
        t0 = time.perf_counter()
        task = "translate" if self.via_whisper else "transcribe"
        got = await self.models.transcribe(audio, task=task, language=self.candidates())
        return Heard(got["text"].strip(), got.get("language"), got.get("language_prob") or 0.0,
                     task, time.perf_counter() - t0)

    async def respond(self, heard: Heard | GlassesError, speech_end: float, audio=None) -> str:
        """Speak and print the translation of what was heard (or why there is none).

        `speech_end`: perf_counter time the speech ended, for the latency. Returns the
        translation, or "" when there is none.
        """
        if self.pair is None:
            return ""                 # switched off while Whisper listened
        if isinstance(heard, GlassesError):
            return await self._problem(f"recognition failed: {heard}",
                                       "Sorry, I didn't catch that.")
        if not heard.text:
            self.events.emit("translate", "heard nothing")
            return ""
        src, (a, b) = heard.language, self.pair
        if src == "en" and action_of(heard.text) in STOP_ACTIONS:
            self.stop("asked to stop")
            await self.speech.say("Translation off.")
            return ""
        if src not in self.pair or heard.probability < MIN_LANGUAGE_PROB:
            return await self._problem(
                f"heard neither {LANGUAGES[a]} nor {LANGUAGES[b]} "
                f"({src} p {heard.probability:.2f}: {heard.text[:60]!r})",
                f"Sorry, that was not {LANGUAGES[a]} or {LANGUAGES[b]}.")
        dst = b if src == a else a
        english = heard.text if src == "en" or heard.task == "translate" else None
        if heard.task == "transcribe" or src == "en":
            self.events.emit("caption", f"{src}: {heard.text}")
        whisper_did_it = dst == "en" and english is not None
        why = None if whisper_did_it else self.llm_off()
        if why is not None:
            # Into English still works without the LLM: Whisper translates.
            still = (f" {LANGUAGES[dst]} into English still works." if self.via_whisper
                     and "en" in self.pair and dst != "en" else "")
            return await self._problem(f"{src}->{dst} unavailable: {why}",
                                       f"I can't translate {LANGUAGES[src]} into "
                                       f"{LANGUAGES[dst]} now: {why}.{still}")
        t0 = time.perf_counter()
        try:
            if whisper_did_it:
                translation = english
            elif english is not None:       # English, or a pivot through Whisper's English
                translation = await self.translate_text(english, "en", dst)
            else:
                translation = await self.translate_text(heard.text, src, dst)
        except TranslateError as e:
            return await self._problem(f"{src}->{dst}: {e}", str(e))
        except RequestCancelled:      # switched off (or interrupted) while the LLM ran
            self.events.emit("translate", f"{src}->{dst} cancelled")
            return ""
        llm_s = None if whisper_did_it else time.perf_counter() - t0
        self.events.emit("caption", f"{src}->{dst}: {translation}")
        t1 = time.perf_counter()
        await self.speech.say(translation, dst)
        spoke = time.perf_counter()
        turn = {"source": src, "target": dst, "heard": heard.text, "translation": translation,
                "latency_s": round(spoke - speech_end, 3), "asr_s": round(heard.asr_s, 3),
                "llm_s": None if llm_s is None else round(llm_s, 3),
                "voice_s": round(spoke - t1, 3)}
        self.turns.append(turn)
        self.events.emit("translate", f"{src}->{dst} {turn['latency_s']:.2f} s from end of speech "
                         f"(asr {heard.asr_s:.2f} s, llm {llm_s or 0:.2f} s, "
                         f"voice {turn['voice_s']:.2f} s)")
        if src != "en" and heard.task == "translate" and audio is not None:
            spawn(self._caption_source(audio, src), name="translate-caption")
        return translation

    async def _problem(self, detail: str, say: str) -> str:
        self.events.emit("translate", detail)
        await self.speech.say(say)
        return ""

    async def _caption_source(self, audio, language: str) -> None:
        # The translate task gave English only; what was said, in its own script, comes from
        # a second pass after the translation is playing, at background priority, so it never
        # delays the answer (it would cost about half a second before it).
        try:
            got = await self.models.transcribe(audio, task="transcribe", language=language,
                                               priority=PRIORITY_BACKGROUND)
        except GlassesError as e:
            log.info("source caption skipped: %s", e)
            return
        if got["text"].strip():
            self.events.emit("caption", f"{language}: {got['text'].strip()}")

    def llm_off(self) -> str | None:
        """Why the LLM may not run now, or None if it may."""
        if not self.modes.policy.llm:
            return "the glasses are too hot" if self.modes.mode == "HOT" else \
                f"the language model is off in {self.modes.mode} mode"
        if self.models is None or self.models.state != "ready":
            return "the language model is not running"
        return None

    async def translate_text(self, text: str, source: str, target: str) -> str:
        """`text` in `target` by the LLM; TranslateError (fit to be spoken) if not possible."""
        why = self.llm_off()
        if why is not None:
            raise TranslateError(f"I can't translate into {LANGUAGES[target]} now: {why}.")
        system, chat = messages(text, source, target)
        self._stream = stream = self.models.generate(
            messages=chat, system=system, max_tokens=min(160, 24 + 2 * len(text)),
            timeout_s=LLM_TIMEOUT_S)
        try:
            raw = "".join([piece async for piece in stream])
        except RequestCancelled:
            raise
        except GlassesError as e:
            log.warning("translation failed: %s", e)
            raise TranslateError("Sorry, the translation failed.") from None
        finally:
            if self._stream is stream:
                self._stream = None
        out = clean(raw, target)
        if not out:
            log.info("translation of %r into %s unusable: %r", text[:60], target, raw)
            raise TranslateError("Sorry, I couldn't translate that.")
        return out

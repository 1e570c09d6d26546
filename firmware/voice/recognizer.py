"""Recognition: an utterance's audio to an Intent.

The command grammar first (PocketSphinx in the voice worker, milliseconds): a device
command is acted on without the ASR. A grammar maps any speech to some phrase and
pocketsphinx 5 gives no usable score for it, so a match counts only when its words cover
most of the voiced audio. Everything else goes to the ASR in the model worker (Whisper:
text and the language it identified), and its text to the intent matcher, so a command the
grammar missed (an accent, a noisy room, a politer phrasing) still acts.
"""

import logging

from drivers.errors import GlassesError

from ..ports import LanguageModels, VoiceModels
from .intents import ALL_PHRASES, PHRASE_TO_ACTION, Intent, match

log = logging.getLogger("glasses.voice")

# A grammar match is taken as the command only when its words account for this share of
# the voiced audio (measured on espeak-ng speech: commands 0.93-1.09; sentences forced
# onto a command 0.51-0.77); otherwise the utterance goes to the ASR.
COMMAND_MIN_COVERAGE = 0.85


class RecognitionUnavailable(GlassesError, RuntimeError):
    """No worker can turn this audio into text; the message says how to start one."""


class Recognizer:
    def __init__(self, voice: VoiceModels | None, models: LanguageModels | None):
        self.voice, self.models = voice, models
        self._early: tuple[int, Intent] | None = None   # (samples, intent) found at a pause

    async def command(self, audio) -> Intent | None:
        """A device command if the grammar is confident about the whole of `audio`."""
        if self.voice is None or self.voice.state != "ready":
            return None
        got = await self.voice.grammar(audio, ALL_PHRASES)
        log.info("command grammar: %r coverage %.2f", got["text"], got.get("coverage", 0.0))
        if got["text"] and got.get("coverage", 0.0) >= COMMAND_MIN_COVERAGE:
            return Intent(PHRASE_TO_ACTION[got["text"]], got["text"], "en")
        return None

    async def at_pause(self, audio) -> bool:
        """At the first pause: is the utterance so far already a confident command?"""
        intent = await self.command(audio)
        if intent is None:
            return False
        self._early = (len(audio), intent)
        return True

    async def recognize(self, audio, commands: bool = True) -> Intent:
        """The intent of a whole utterance; `commands=False` skips the grammar (translation)."""
        early, self._early = self._early, None
        if commands and early is not None and early[0] <= len(audio):
            return early[1]            # decided at the pause: no second decode
        if self.models is None or self.models.state != "ready":
            raise RecognitionUnavailable("speech recognition needs the model worker; "
                                         "run with --models")
        if commands:
            intent = await self.command(audio)
            if intent is not None:
                return intent
        heard = await self.models.transcribe(audio)
        log.info("asr: %r (%s %.2f)", heard["text"], heard.get("language"),
                 heard.get("language_prob") or 0.0)
        # The language the ASR identified decides the answer's language.
        return match(heard["text"], heard.get("language"))

    def forget(self) -> None:
        self._early = None

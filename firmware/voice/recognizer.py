"""Recognition: an utterance's audio to an Intent.

The command grammar first (PocketSphinx in the voice worker, milliseconds): a device
command is acted on without the ASR. A grammar maps any speech to some phrase and
pocketsphinx 5 gives no usable score for it, so a match counts only when its words cover
most of the voiced audio. Everything else goes to the ASR in the model worker (Whisper:
text and the language it identified), and its text to the intent matcher, so a command the
grammar missed (an accent, a noisy room, a politer phrasing) still acts.
"""

import asyncio
import logging

from glasses_firmware.drivers.errors import GlassesError

from ..ports import LanguageModels, VoiceModels
from ..worker.errors import not_ready
from .intents import ALL_PHRASES, LANGUAGES, PHRASE_TO_ACTION, Intent, match

log = logging.getLogger("glasses.voice")

# A grammar match is taken as the command only when its words account for this share of
# the voiced audio (measured on espeak-ng speech: commands 0.93-1.09; sentences forced
# onto a command 0.51-0.77); otherwise the utterance goes to the ASR.
COMMAND_MIN_COVERAGE = 0.85
# Actions the grammar may take on its own at the first pause, within a few hundred ms:
# reading the battery or the time, the volume, "never mind". Whatever captures, records or
# changes how the glasses listen waits for the ASR's transcript to ask for it too: on 60
# everyday sentences the grammar alone took 5 actions nobody asked for, 4 of them with side
# effects (stop the recording, translate), and a British "start a video" as "stop the video".
INSTANT_ACTIONS = frozenset({"battery", "time", "volume_up", "volume_down", "cancel"})


class RecognitionUnavailable(GlassesError, RuntimeError):
    """No worker can turn this audio into text; the message says how to start one."""


class Recognizer:
    """Audio to Intent. `speculate_tail_s`: how much audio may follow the last pause and the
    transcript made at that pause still stand (the endpoint's silence, less the pause's)."""

    def __init__(self, voice: VoiceModels | None, models: LanguageModels | None,
                 speculate_tail_s: float = 0.65, asr_confirms: bool = True):
        self.voice, self.models = voice, models
        # False when the ASR cannot be trusted to agree (random-weight test models): then
        # the grammar decides every command alone, as it does with no ASR at all.
        self.asr_confirms = asr_confirms
        self._early: tuple[int, Intent] | None = None   # (samples, intent) found at a pause
        self._tail = int(speculate_tail_s * 16000)
        self._speculation = None      # (samples, stream, future) of an ASR run begun at a pause
        self.speculation_used = self.speculation_wasted = 0

    async def command(self, audio) -> Intent | None:
        """A device command the grammar may take alone, if it is confident about all of `audio`.

        With the ASR running, only INSTANT_ACTIONS: the rest wait for the transcript.
        Without it, the grammar is all there is, and every action goes.
        """
        if self.voice is None or self.voice.state != "ready":
            return None
        got = await self.voice.grammar(audio, ALL_PHRASES)
        log.info("command grammar: %r coverage %.2f", got["text"], got.get("coverage", 0.0))
        # Partial phrases ("turn the volume") come back when a word was not found: no command.
        action = PHRASE_TO_ACTION.get(got["text"])
        if action is None or got.get("coverage", 0.0) < COMMAND_MIN_COVERAGE:
            return None
        if action not in INSTANT_ACTIONS and self.asr_confirms and self._asr_ready():
            log.info("command grammar: %s waits for the transcript to agree", action)
            return None
        return Intent(action, got["text"], "en")

    def _asr_ready(self) -> bool:
        return self.models is not None and self.models.state == "ready"

    async def at_pause(self, audio, commands: bool = True) -> bool:
        """At a pause: True if the utterance so far is already a confident command.

        Otherwise the ASR starts on it now, speculatively: if the pause turns out to be the
        end of the utterance, its transcript is ready half a second sooner; if speech goes
        on, the run is cancelled at the next pause.
        """
        self._drop_speculation()
        intent = await self.command(audio) if commands else None
        if intent is not None:
            self._early = (len(audio), intent)
            return True
        if self._asr_ready():
            stream = self.models.transcribe_stream(audio, language=list(LANGUAGES))
            future = asyncio.ensure_future(stream.wait())
            future.add_done_callback(_retrieve)
            self._speculation = (len(audio), stream, future)
        return False

    def _drop_speculation(self) -> None:
        spec, self._speculation = self._speculation, None
        if spec is not None and not spec[2].done():
            spec[1].cancel()
            self.speculation_wasted += 1

    async def recognize(self, audio, commands: bool = True) -> Intent:
        """The intent of a whole utterance; `commands=False` skips the grammar (translation)."""
        early, self._early = self._early, None
        spec, self._speculation = self._speculation, None
        if commands and early is not None and early[0] <= len(audio):
            return early[1]            # decided at the pause: no second decode
        if self.models is None:
            raise RecognitionUnavailable("speech recognition needs the model worker; "
                                         "run with --models")
        if not self._asr_ready():
            raise RecognitionUnavailable(not_ready(self.models, "speech recognition"))
        if spec is not None and 0 <= len(audio) - spec[0] <= self._tail:
            # Only the endpoint's silence came after that pause: its transcript stands.
            self.speculation_used += 1
            heard = await spec[2]
        else:
            if spec is not None:
                self._speculation = spec
                self._drop_speculation()
            if commands:
                intent = await self.command(audio)
                if intent is not None:
                    return intent
            heard = await self.models.transcribe(audio, language=list(LANGUAGES))
        log.info("asr: %r (%s %.2f)", heard["text"], heard.get("language"),
                 heard.get("language_prob") or 0.0)
        # The language the ASR identified decides the answer's language.
        return match(heard["text"], heard.get("language"))

    def forget(self) -> None:
        self._early = None
        self._drop_speculation()


def _retrieve(future) -> None:
    """A cancelled speculation's error is expected: mark it seen, so nothing warns about it."""
    if not future.cancelled():
        future.exception()

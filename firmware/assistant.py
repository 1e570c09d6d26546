"""The voice assistant: triggers, recognition, the intent router, and speech out.

A turn: a trigger (wake word, action-button tap, or hold for push-to-talk) opens
INTERACTIVE and listening; the utterance goes to the command grammar first and, when
that is not confident, to the ASR; a device command is acted on at once, anything else
goes to the LLM, whose answer is spoken sentence by sentence while it is still being
generated. After an answer a follow-up window listens without the wake word. The
action button or the wake word interrupts speech and generation and listens again.
"""

import asyncio
import collections
import logging
import re
import time

from drivers.atomic import write_atomic
from drivers.errors import GlassesError
from drivers.wavio import wav_bytes

from . import modes as m
from .intents import ALL_PHRASES, LANGUAGES, PHRASE_TO_COMMAND, Intent, match
from .listener import Listener
from .speech import SpeechOut

log = logging.getLogger("glasses.assistant")

SYSTEM_PROMPT = ("You are the voice assistant in a pair of smart glasses. Answer in one or two "
                 "short spoken sentences, without lists or markdown, in {language}.")
TRANSLATE_PROMPT = ("Translate what the user says into {language}. Reply with the translation "
                    "only.")
MEMORY_TURNS = 4
FOLLOW_UP_S = 5.0
MAX_ANSWER_TOKENS = 60
FIRST_CHUNK_CHARS = 16
# A grammar match is taken as the command only when its words account for this share of
# the voiced audio (measured on espeak-ng speech: commands 0.93-1.09; sentences forced
# onto a command 0.51-0.77); otherwise the utterance goes to the ASR.
COMMAND_MIN_COVERAGE = 0.85
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


class Assistant:
    def __init__(self, fw):
        self.fw = fw
        self.speech = SpeechOut(fw)
        self.listener = Listener(fw, self._wake_word, self._heard,
                                 is_speaking=lambda: self.speech.busy, early=self._early_command)
        self._early: tuple[int, Intent] | None = None   # (samples, intent) found at a pause
        self.memory: collections.deque = collections.deque(maxlen=2 * MEMORY_TURNS)
        self.translate_to: str | None = None
        self.turn: asyncio.Task | None = None
        self._stream = None
        self.last_timing: dict = {}
        self.turns = 0

    # Lifecycle follows the mode: listening only where the mode allows it.
    def mode_changed(self, mode: str) -> None:
        if m.POLICY[mode].listening:
            self.listener.start()
        else:
            self.interrupt()
            self.listener.stop()

    # Triggers.
    def _wake_word(self) -> None:
        self.trigger("wake word")

    def trigger(self, source: str, push_to_talk: bool = False) -> None:
        """Interrupt whatever is going on and listen for an utterance."""
        if not self.fw.machine.policy.listening:
            return
        self.interrupt()
        self.turns += 1
        if self.fw.machine.allowed("wake") and self.fw.mode != m.INTERACTIVE:
            self.fw.machine.fire("wake", source)
        self.fw.touch()
        self.fw.events.emit("assistant", f"listening ({source})")
        self.fw.cues.earcon("listen_start")
        self.listener.listen(pre_roll_s=0.25 if source == "wake word" else None,
                             push_to_talk=push_to_talk)

    def gesture(self, button: str, gesture: str) -> None:
        if button != "action":
            return
        if gesture == "click":
            self.trigger("button")
        elif gesture == "long":
            self.trigger("push-to-talk", push_to_talk=True)
        elif gesture == "release":
            self.listener.release()

    def interrupt(self) -> None:
        """Barge-in: stop speech and generation at once."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        if self.turn is not None and not self.turn.done():
            self.turn.cancel()
        self.speech.stop()

    # Turns.
    async def _early_command(self, audio) -> bool:
        """At the first pause: if the audio so far is a confident command, stop listening."""
        intent = await self._command(audio)
        if intent is None:
            return False
        self._early = (len(audio), intent)
        return True

    async def _command(self, audio) -> Intent | None:
        worker = self.fw.voice
        if worker is None or worker.state != "ready" or self.translate_to is not None:
            return None
        got = await worker.commands(audio, ALL_PHRASES)
        log.info("command grammar: %r coverage %.2f", got["text"], got.get("coverage", 0.0))
        if got["text"] and got.get("coverage", 0.0) >= COMMAND_MIN_COVERAGE:
            return Intent(PHRASE_TO_COMMAND[got["text"]], got["text"], "en")
        return None

    def _heard(self, audio) -> None:
        self.last_timing = {"heard_at": time.perf_counter()}
        self.speech.first_audio_at = None
        self.fw.cues.earcon("listen_end")
        if audio is None:
            self.fw.events.emit("assistant", "heard nothing")
            self._end_turn()
            return
        self.fw.touch()
        self.turn = asyncio.get_running_loop().create_task(self._voice_turn(audio), name="turn")

    async def _voice_turn(self, audio) -> None:
        # Kept for "what did it hear?": the last utterance, next to the log.
        await self.fw.run_blocking(write_atomic, self.fw.data_dir / "logs" / "last-utterance.wav",
                                   wav_bytes(audio, 16000))
        t0 = time.perf_counter()
        intent = await self.recognize(audio)
        self.last_timing["recognize_ms"] = (time.perf_counter() - t0) * 1000
        self.fw.events.emit("assistant", f"heard \"{intent.text}\"")
        await self.respond(intent)

    async def recognize(self, audio) -> Intent:
        early, self._early = self._early, None
        if early is not None and early[0] <= len(audio):
            return early[1]            # decided at the pause: no second decode
        worker = self.fw.worker
        if worker is None or worker.state != "ready":
            raise GlassesError("speech recognition needs the inference worker; run with --models")
        intent = await self._command(audio)
        if intent is not None:
            return intent
        return match(await worker.transcribe(audio))

    async def ask(self, text: str) -> str:
        """A text turn (the console's `ask`): same routing, spoken reply, returns the reply."""
        self.interrupt()
        self.turns += 1
        if self.fw.machine.allowed("wake") and self.fw.mode != m.INTERACTIVE:
            self.fw.machine.fire("wake", "ask")
        self.turn = asyncio.get_running_loop().create_task(self.respond(match(text), follow_up=False))
        try:
            return await self.turn
        except asyncio.CancelledError:
            if asyncio.current_task().cancelling():
                raise          # our caller is being cancelled, not just the turn
            return "(interrupted)"

    async def respond(self, intent: Intent, follow_up: bool = True) -> str:
        try:
            if intent.command == "cancel":
                self.translate_to = None
                reply = "Okay."
                await self.speech.say(reply)
            elif intent.command is not None:
                self.fw.events.emit("assistant", f"command {intent.command}")
                reply = await self.device(intent.command)
                await self.speech.say(reply)
            else:
                reply = await self.converse(intent)
        except GlassesError as e:
            reply = f"Sorry, {e}"
            self.fw.events.emit("assistant", f"failed: {e}")
            await self.speech.say("Sorry, that did not work.")
        if not follow_up:
            # A typed turn returns once the reply is queued; speaking goes on (and can be
            # interrupted like any other answer).
            asyncio.get_running_loop().create_task(self._finish_speaking())
            return reply
        await self.speech.drain()
        self.fw.touch()
        if self.fw.machine.policy.listening:
            self.fw.events.emit("assistant", "follow-up window")
            self.listener.listen(pre_roll_s=0, no_speech_s=FOLLOW_UP_S)
        else:
            self._end_turn()
        return reply

    async def _finish_speaking(self) -> None:
        turn = self.turns
        await self.speech.drain()
        if turn == self.turns:  # not if a new turn has started meanwhile
            self._end_turn()

    def _end_turn(self) -> None:
        if self.fw.mode == m.INTERACTIVE:
            self.fw.machine.fire("turn_done", "turn over")

    async def device(self, command: str) -> str:
        fw = self.fw
        if command == "photo":
            await fw.capture.photo()
            return "Photo taken."
        if command == "video_start":
            await fw.capture.start_video(60)
            return "Recording video."
        if command == "video_stop":
            return "Video saved." if await fw.capture.stop_video() else "No video is recording."
        if command == "record_start":
            await fw.recorder.start()
            return "Recording the meeting."
        if command == "record_stop":
            return "Meeting recording saved." if await fw.recorder.stop() else "Nothing is recording."
        if command.startswith("translate_"):
            self.translate_to = command.split("_")[1]
            return f"Translating into {LANGUAGES[self.translate_to]}. Say stop to end."
        if command in ("volume_up", "volume_down"):
            spk = fw.board.speaker
            spk.volume = round(min(1.0, max(0.1, spk.volume + (0.1 if command == "volume_up" else -0.1))), 2)
            return f"Volume {round(spk.volume * 100)} percent."
        if command == "battery":
            g = fw.board.fuel_gauge.read()
            charging = " and charging" if fw.monitor.charging else ""
            return f"Battery is {round(g.percent)} percent{charging}."
        if command == "time":
            return time.strftime("It's %-I:%M %p.", time.localtime(fw.clock.wall()))
        raise GlassesError(f"no handler for command {command}")

    async def converse(self, intent: Intent) -> str:
        worker = self.fw.worker
        if worker is None or worker.state != "ready":
            raise GlassesError("the language model is not running; start with --models")
        if self.translate_to:
            language, system = self.translate_to, TRANSLATE_PROMPT.format(
                language=LANGUAGES[self.translate_to])
            history = []
        else:
            language = intent.language
            system = SYSTEM_PROMPT.format(language=LANGUAGES[language])
            history = list(self.memory)
        t0 = time.perf_counter()
        self._stream = worker.generate(messages=history + [{"role": "user", "content": intent.text}],
                                       system=system, max_tokens=MAX_ANSWER_TOKENS)
        answer, pending, first = "", "", True
        async for piece in self._stream:
            if first:
                self.last_timing["llm_first_token_ms"] = (time.perf_counter() - t0) * 1000
                first = False
            answer += piece
            pending += piece
            *done, pending = SENTENCE_END.split(pending)
            for sentence in (s for s in done if s.strip()):
                await self.speech.say(sentence, language)   # asked to answer in this language
            # The first words go out at a clause break (or after a few words) so speech
            # starts early; later ones wait for a sentence end (or a long run-on).
            limit = FIRST_CHUNK_CHARS if self.speech.first_audio_at is None else 160
            cut = max(pending.rfind(" "), pending.rfind(","), pending.rfind("，"))
            if len(pending) > limit and cut > 0:
                await self.speech.say(pending[:cut + 1], language)
                pending = pending[cut + 1:]
            elif len(pending) > 2 * limit:
                await self.speech.say(pending, language)
                pending = ""
        self._stream = None
        if pending.strip():
            await self.speech.say(pending, language)
        if not answer.strip():
            # A model that produced nothing speakable must not leave the user in silence.
            answer = "Sorry, I have no answer to that."
            await self.speech.say(answer)
        if not self.translate_to:
            self.memory.extend([{"role": "user", "content": intent.text},
                                {"role": "assistant", "content": answer}])
        self.fw.events.emit("assistant", f"answered ({len(answer)} chars)")
        return answer

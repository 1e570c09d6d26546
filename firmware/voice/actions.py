"""The router: one table of device actions, for voice intents and console commands alike.

"Take a photo" (voice) and `capture photo` (console) run the same action and get the same
checks; an action returns what to say and what to print. A refusal (capture not allowed,
the camera's privacy light broken) is a GlassesError the caller reports its own way: the
console as `ERR`, the assistant as a spoken apology.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from glasses_firmware.drivers.errors import GlassesError

from ..ports import Clock, Speaker
from .intents import LANGUAGES

VOICE_VIDEO_S = 60.0     # "start a video" by voice: a minute, or until "stop video"
BURST_GAP_S = 0.2


@dataclass(frozen=True)
class Outcome:
    say: str                        # the spoken reply
    lines: tuple[str, ...]          # what the console prints
    language: str = "en"            # the voice `say` is spoken in (text read off a sign)


@dataclass(frozen=True)
class Action:
    name: str
    summary: str
    handler: Callable[..., Awaitable[Outcome]]


class UnknownAction(GlassesError, ValueError):
    """An action name the router does not have."""


class ActionRouter:
    """Runs ACTIONS against the services it is given; `run(name, **args) -> Outcome`."""

    def __init__(self, *, capture, recorder, speaker: Speaker, conversation, clock: Clock,
                 conditions, data_dir: Path, translator=None, reader=None, payments=None,
                 privacy=None, calls=None, media=None, sealer=None):
        self.capture, self.recorder, self.speaker = capture, recorder, speaker
        self.conversation, self.clock = conversation, clock
        self.translator, self.reader = translator, reader    # voice/translator.py, reading.py
        self.payments = payments                             # payments/flow.py
        self.privacy = privacy          # capture's "don't record me": pause/resume
        self.calls, self.media = calls, media                # phone/calls.py, phone/media.py
        self.conditions = conditions    # () -> fresh power.conditions.Conditions
        self.data_dir = Path(data_dir)
        self.sealer = sealer            # drivers/sealed.py: opens the sealed meeting notes

    async def run(self, name: str, **args) -> Outcome:
        action = ACTIONS.get(name)
        if action is None:
            raise UnknownAction(f"no action '{name}'; one of {', '.join(ACTIONS)}")
        return await action.handler(self, **args)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.data_dir))


async def _photo(r: ActionRouter) -> Outcome:
    path = await r.capture.photo()
    return Outcome("Photo taken.", (f"photo {r.rel(path)}",))


async def _burst(r: ActionRouter, count: int) -> Outcome:
    paths = await r.capture.burst(count, gap_s=BURST_GAP_S)
    return Outcome(f"{len(paths)} photos taken.", tuple(f"photo {r.rel(p)}" for p in paths))


async def _video_start(r: ActionRouter, seconds: float = VOICE_VIDEO_S) -> Outcome:
    path = await r.capture.start_video(seconds)
    return Outcome("Recording video.", (f"recording {r.rel(path)}",))


async def _video_stop(r: ActionRouter) -> Outcome:
    path = await r.capture.stop_video()
    if path is None:
        return Outcome("No video is recording.", ("no video recording",))
    return Outcome("Video saved.", (f"video {r.rel(path)}",))


async def _capture_stop(r: ActionRouter) -> Outcome:
    path = await r.capture.stop_video()
    stopped = r.capture.stop_interval()
    lines = ([f"video {r.rel(path)}"] if path else []) + (["interval stopped"] if stopped else [])
    return Outcome("Stopped." if lines else "Nothing to stop.", tuple(lines) or ("nothing to stop",))


async def _interval_start(r: ActionRouter, seconds: float) -> Outcome:
    r.capture.start_interval(seconds)
    return Outcome(f"A photo every {seconds:g} seconds.",
                   (f"a photo every {seconds:g} s until `capture interval stop`",))


async def _interval_stop(r: ActionRouter) -> Outcome:
    if r.capture.stop_interval():
        return Outcome("Interval photos stopped.", ("interval stopped",))
    return Outcome("No interval photos are running.", ("no interval capture running",))


async def _record_start(r: ActionRouter) -> Outcome:
    path = await r.recorder.start()
    return Outcome("Recording the meeting.", (f"recording into {r.rel(path)}",))


async def _record_stop(r: ActionRouter) -> Outcome:
    path = await r.recorder.stop()
    if path is None:
        return Outcome("Nothing is recording.", ("not recording",))
    return Outcome("Meeting recording saved.",
                   (f"saved {r.rel(path)} ({r.recorder.segments} segments)",))


async def _notes_start(r: ActionRouter) -> Outcome:
    # Every recording gets notes (meeting/transcriber.py): this is a recording, said so.
    path = await r.recorder.start()
    return Outcome("Taking meeting notes.", (f"recording into {r.rel(path)}; notes follow",))


async def _notes_stop(r: ActionRouter) -> Outcome:
    path = await r.recorder.stop()
    if path is None:
        return Outcome("No meeting is being recorded.", ("not recording",))
    return Outcome("Meeting saved. The notes will be ready in a few minutes.",
                   (f"saved {r.rel(path)}; notes will be notes/{path.name}.md",))


async def _decisions(r: ActionRouter) -> Outcome:
    from ..meeting.notes import latest_decisions
    found = latest_decisions(r.data_dir, r.sealer)
    if found is None:
        return Outcome("There are no meeting notes yet.", ("no meeting notes yet",))
    when, decisions = found
    if not decisions:
        return Outcome(f"No decisions were noted in the meeting at {when}.",
                       (f"meeting at {when}: no decisions noted",))
    said = " ".join(d.rstrip(".") + "." for d in decisions[:5])
    return Outcome(f"In the meeting at {when}, you decided: {said}",
                   tuple(f"decided: {d}" for d in decisions))


def _translate(language: str):
    async def handler(r: ActionRouter) -> Outcome:
        if r.translator is not None:
            r.translator.stop("one-way translation instead")
        r.conversation.translate_to = language
        return Outcome(f"Translating into {LANGUAGES[language]}. Say stop to end.",
                       (f"translating into {LANGUAGES[language]}",))
    return handler


def _converse(first: str | None = None, second: str | None = None):
    async def handler(r: ActionRouter, first: str = first, second: str = second) -> Outcome:
        _needs(r.translator, "conversation translation")
        r.translator.start(first, second)       # TranslateError names what is wrong
        r.conversation.translate_to = None
        return Outcome(f"Translating {r.translator.describe()}. Say stop translating to end.",
                       (f"translating {first} <-> {second}; `translate off` to end",))
    return handler


async def _converse_off(r: ActionRouter) -> Outcome:
    if r.translator is None or not r.translator.stop("asked to stop"):
        return Outcome("Translation is off.", ("translation was off",))
    return Outcome("Translation off.", ("translation off",))


def _read(translate: bool):
    async def handler(r: ActionRouter, translate_to: str | None = None) -> Outcome:
        _needs(r.reader, "reading")
        target = translate_to or (r.reader.wearer_language if translate else None)
        reading = await r.reader.read(target)
        return Outcome(reading.say, tuple(reading.report()), reading.say_language)
    return handler


async def _ask_view(r: ActionRouter, question: str = "what is this") -> Outcome:
    _needs(r.reader, "questions about what is in view")
    answer = await r.reader.answer(question)
    return Outcome(answer.say, tuple(answer.report()), answer.say_language)


async def _scan(r: ActionRouter) -> Outcome:
    _needs(r.payments, "code scanning")
    say, lines = await r.payments.scan()
    return Outcome(say, tuple(lines))


async def _pay(r: ActionRouter, amount: str | None = None, currency: str | None = None) -> Outcome:
    _needs(r.payments, "payments")
    from ..payments.flow import parse_asked
    asked = parse_asked(amount, currency) if amount is not None else None
    say, lines = await r.payments.pay(asked)
    return Outcome(say, tuple(lines))


async def _pay_cancel(r: ActionRouter) -> Outcome:
    _needs(r.payments, "payments")
    if r.payments.cancel("cancelled by the wearer"):
        return Outcome("Payment cancelled.", ("payment cancelled",))
    return Outcome("There is no payment to cancel.", ("no payment waiting",))


async def _pay_confirm(r: ActionRouter) -> Outcome:
    # Listed so that "confirm" is understood, and answered with what does confirm.
    _needs(r.payments, "payments")
    say = r.payments.refuse_voice_confirm()
    return Outcome(say, (say,))


async def _privacy_pause(r: ActionRouter) -> Outcome:
    _needs(r.privacy, "pausing capture")
    await r.privacy.pause_privacy("someone asked not to be recorded", say=False)
    return Outcome("Capture is paused: someone asked not to be recorded.",
                   ("capture paused: someone asked not to be recorded; `capture resume` or "
                    "'you can record again' to resume",))


async def _privacy_resume(r: ActionRouter) -> Outcome:
    _needs(r.privacy, "resuming capture")
    if r.privacy.resume_privacy(say=False):
        return Outcome("Capture resumed.", ("capture resumed",))
    return Outcome("Capture was not paused.", ("capture was not paused",))


def _needs(service, what: str) -> None:
    if service is None:
        raise UnknownAction(f"{what} is not set up on this firmware")


async def _cancel(r: ActionRouter) -> Outcome:
    if r.payments is not None and r.payments.cancel("cancelled by the wearer"):
        return Outcome("Payment cancelled.", ("payment cancelled",))
    if r.translator is not None:
        r.translator.stop("cancelled")
    r.conversation.translate_to = None
    return Outcome("Okay.", ("okay",))


def _phone(service: str, method: str, what: str):
    """An action of the phone's calls or music: what it says is the reply."""
    async def handler(r: ActionRouter, **args) -> Outcome:
        _needs(getattr(r, service), what)
        say = await getattr(getattr(r, service), method)(**args)
        return Outcome(say, (say,))
    return handler


def _volume(step: float):
    async def handler(r: ActionRouter) -> Outcome:
        if r.media is not None and r.media.status == "playing":     # music: its volume
            say = await r.media.step_volume(1 if step > 0 else -1)
            return Outcome(say, (say,))
        r.speaker.volume = round(min(1.0, max(0.1, r.speaker.volume + step)), 2)
        return Outcome(f"Volume {round(r.speaker.volume * 100)} percent.",
                       (f"volume {r.speaker.volume:.2f}",))
    return handler


async def _music_now(r: ActionRouter) -> Outcome:
    _needs(r.media, "music")
    say = r.media.now()
    return Outcome(say, (say,))


async def _battery(r: ActionRouter) -> Outcome:
    c = r.conditions()
    if c.percent is None:
        return Outcome("I cannot read the battery right now.", ("battery unknown",))
    charging = " and charging" if c.charging else ""
    return Outcome(f"Battery is {round(c.percent)} percent{charging}.",
                   (f"battery {c.percent:.0f} %{charging}",))


async def _time(r: ActionRouter) -> Outcome:
    now = time.localtime(r.clock.wall())
    return Outcome(time.strftime("It's %-I:%M %p.", now), (time.strftime("%H:%M", now),))


ACTIONS: dict[str, Action] = {a.name: a for a in [
    Action("photo", "take a photo", _photo),
    Action("burst", "take COUNT photos", _burst),
    Action("video_start", "record video for SECONDS", _video_start),
    Action("video_stop", "stop the video", _video_stop),
    Action("capture_stop", "stop the video and interval photos", _capture_stop),
    Action("interval_start", "a photo every SECONDS", _interval_start),
    Action("interval_stop", "stop interval photos", _interval_stop),
    Action("record_start", "record a meeting", _record_start),
    Action("record_stop", "stop the meeting recording", _record_stop),
    Action("notes_start", "record a meeting for notes", _notes_start),
    Action("notes_stop", "stop the meeting; its notes follow", _notes_stop),
    Action("decisions", "the decisions of the latest meeting notes", _decisions),
    *(Action(f"translate_{code}", f"translate into {name}", _translate(code))
      for code, name in LANGUAGES.items()),
    Action("converse", "translate a conversation between FIRST and SECOND", _converse()),
    Action("converse_en_zh", "translate between English and Chinese", _converse("en", "zh")),
    Action("converse_en_ko", "translate between English and Korean", _converse("en", "ko")),
    Action("converse_off", "stop translating the conversation", _converse_off),
    Action("read", "read the text in view aloud", _read(translate=False)),
    Action("read_translate", "read the text in view, translated", _read(translate=True)),
    Action("ask_view", "answer a question about the text in view", _ask_view),
    Action("scan", "read the codes in view (QR, product codes)", _scan),
    Action("pay", "pay the QR code in view (AMOUNT CURRENCY if said)", _pay),
    Action("pay_cancel", "cancel the payment offer", _pay_cancel),
    Action("pay_confirm", "say that only the button confirms a payment", _pay_confirm),
    Action("privacy_pause", "pause capture: someone asked not to be recorded", _privacy_pause),
    Action("privacy_resume", "capture allowed again", _privacy_resume),
    Action("cancel", "stop translating", _cancel),
    Action("call_answer", "answer the ringing call", _phone("calls", "answer", "calls")),
    Action("call_reject", "decline the ringing call", _phone("calls", "reject", "calls")),
    Action("call_hangup", "end the call", _phone("calls", "hangup", "calls")),
    Action("music_play", "play the phone's music", _phone("media", "play", "music")),
    Action("music_pause", "pause the phone's music", _phone("media", "pause", "music")),
    Action("music_next", "the next track", _phone("media", "next", "music")),
    Action("music_volume", "the music's volume, PERCENT", _phone("media", "set_volume", "music")),
    Action("music_now", "what song is playing", _music_now),
    Action("volume_up", "louder", _volume(+0.1)),
    Action("volume_down", "quieter", _volume(-0.1)),
    Action("battery", "the battery level", _battery),
    Action("time", "the time", _time),
]}

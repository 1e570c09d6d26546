"""Console commands for the phone's calls and music: `call ...`, `music ...`.

They run the same router actions the button and the voice do ("answer", "what song is
this"), so the console answers exactly what the wearer would hear.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .commands import Command, CommandError, as_json, take_flag
from .features import run_action

if TYPE_CHECKING:
    from ..phone.calls import Calls
    from ..phone.media import Media
    from ..voice.actions import ActionRouter

CALL_USAGE = "call answer|reject|hangup | call [status] [--json]"
NO_PHONE = "this board has no phone link (no [bluetooth] table in its board file)"
MUSIC_USAGE = "music play|pause|next|now | music volume PERCENT | music status [--json]"


@dataclass(frozen=True)
class CallPorts:
    calls: "Calls | None"           # None: the board has no Bluetooth
    router: "ActionRouter"


@dataclass(frozen=True)
class MusicPorts:
    media: "Media | None"           # None: the board has no Bluetooth
    router: "ActionRouter"


async def cmd_call(session, ports: CallPorts, args):
    args, js = take_flag(args, "--json")
    calls = ports.calls
    if calls is None:
        raise CommandError(NO_PHONE)
    match args:
        case [] | ["status"]:
            status = calls.status()
            if js:
                return as_json(status)
            if status["state"] == "idle":
                return [f"no call ({status['modems']} phone(s) with calls linked)"]
            line = f"call {status['state']} with {status['caller']} via {status['via']}"
            if "seconds" in status:
                audio = status["audio"]
                line += (f", {status['seconds']:g} s, audio {audio['from_phone_bytes']} bytes in / "
                         f"{audio['to_phone_bytes']} bytes out")
            return [line]
        case ["answer" | "reject" | "hangup" as what]:
            return await run_action(ports.router, f"call {what}", f"call_{what}", {})
    raise CommandError(f"usage: {CALL_USAGE}")


async def cmd_music(session, ports: MusicPorts, args):
    args, js = take_flag(args, "--json")
    if ports.media is None:
        raise CommandError(NO_PHONE)
    match args:
        case ["play" | "pause" | "next" | "now" as what]:
            return await run_action(ports.router, f"music {what}", f"music_{what}", {})
        case ["volume", percent]:
            try:
                value = float(percent)
            except ValueError:
                raise CommandError(f"PERCENT must be a number 0 to 100, got '{percent[:12]}'; "
                                   f"usage: {MUSIC_USAGE}") from None
            return await run_action(ports.router, "music volume", "music_volume", {"percent": value})
        case [] | ["status"]:
            status = ports.media.status_line()
            if js:
                return as_json(status)
            return [" ".join(f"{k} {v}" for k, v in status.items())]
    raise CommandError(f"usage: {MUSIC_USAGE}")


COMMANDS = (
    Command("call", CALL_USAGE, "the phone call: answer, reject or hang up; its state", cmd_call,
            CallPorts),
    Command("music", MUSIC_USAGE, "the phone's music: play, pause, next, volume, what is playing",
            cmd_music, MusicPorts),
)


SIM_USAGE = "call NAME [NUMBER] | hangup | hfp on|off | music play|queue TITLE ARTIST"  # sim phone


async def sim_phone_telephony(sim, args: list[str]) -> list[str] | None:
    """The sim phone's calls and music (drivers/sim/telephony.py); None: not one of these words."""
    telephony = getattr(sim, "telephony", None)
    if not args or args[0] not in ("call", "hangup", "hfp", "music"):
        return None
    if telephony is None:
        raise CommandError("this sim board's phone has no telephony (no [bluetooth] table)")
    match args:
        case ["call", name] | ["call", name, _]:
            number = args[2] if len(args) == 3 else None
            if number is not None and not number.lstrip("+").isdigit():
                raise CommandError(f"NUMBER must be digits (a leading + allowed), got '{number[:20]}'")
            await telephony.incoming_call(name, number)
            return [f"phone: {name} is calling"]
        case ["hangup"]:
            ended = await telephony.hangup()
            return ["phone: the caller hung up" if ended else "phone: no call to hang up"]
        case ["hfp", "on" | "off" as state]:
            await telephony.set_hfp(state == "on")
            return [f"phone: hands-free {state}"]
        case ["music", "play" | "queue" as what, title, artist]:
            if what == "play":
                await telephony.music_play(title, artist)
            else:
                await telephony.music_queue(title, artist)
            return [f"phone: {what} {title} by {artist}"]
    raise CommandError(f"usage: sim phone {SIM_USAGE}")

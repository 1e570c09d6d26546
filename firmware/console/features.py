"""Console commands for features: `capture`, `record` and `ask`.

`capture` and `record` run the router's actions, the same ones voice commands run, so a
typed command and a spoken one get the same checks and refusals.
"""

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glasses_firmware.drivers.errors import GlassesError

from .commands import Command, CommandError, is_count

if TYPE_CHECKING:
    from ..voice.actions import ActionRouter
    from ..voice.assistant import Assistant

CAPTURE_USAGE = ("capture photo | capture burst N | capture video SECONDS | "
                 "capture interval SECONDS|stop | capture stop | capture pause|resume")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CommandError(f"'{text[:20]}' is not a number of seconds; usage: {CAPTURE_USAGE}")
    return value


def _action(args: list[str]) -> tuple[str, dict] | None:
    match args:
        case ["photo"]:
            return "photo", {}
        case ["burst", n] if is_count(n):
            return "burst", {"count": int(n)}
        case ["video", seconds]:
            return "video_start", {"seconds": _seconds(seconds)}
        case ["interval", "stop"]:
            return "interval_stop", {}
        case ["interval", seconds]:
            return "interval_start", {"seconds": _seconds(seconds)}
        case ["stop"]:
            return "capture_stop", {}
        case ["pause"]:                 # "don't record me"
            return "privacy_pause", {}
        case ["resume"]:
            return "privacy_resume", {}
    return None


@dataclass(frozen=True)
class ActionPorts:
    """A command that runs the router's actions, as the voice does (`scan` too)."""

    router: "ActionRouter"


@dataclass(frozen=True)
class AssistantPorts:
    """A typed turn for the assistant (`ask`, `read`)."""

    assistant: "Assistant"


async def run_action(router: "ActionRouter", what: str, name: str, args: dict) -> list[str]:
    """Run a router action for a console command; a refusal becomes the command's ERR."""
    try:
        return list((await router.run(name, **args)).lines)
    except GlassesError as e:
        raise CommandError(f"{what} refused: {e}") from None


async def cmd_capture(session, ports: ActionPorts, args):
    action = _action(args)
    if action is None:
        raise CommandError(f"usage: {CAPTURE_USAGE}")
    return await run_action(ports.router, "capture", *action)


async def cmd_record(session, ports: ActionPorts, args):
    if args not in (["start"], ["stop"]):
        raise CommandError("usage: record start|stop")
    return await run_action(ports.router, "record", f"record_{args[0]}", {})


async def cmd_ask(session, ports: AssistantPorts, args):
    text = " ".join(args).strip()
    if not text:
        raise CommandError("usage: ask TEXT, e.g. ask what's the battery")
    reply = await ports.assistant.ask(text)
    return reply.splitlines() or ["(no answer)"]


COMMANDS = (
    Command("capture", "capture photo|burst N|video SECONDS|interval SECONDS|stop",
            "take photos or video behind the privacy LED", cmd_capture, ActionPorts),
    Command("record", "record start|stop", "meeting recording: microphone audio in durable segments",
            cmd_record, ActionPorts),
    # A turn is bounded by the assistant's own limits (tokens, the worker's heartbeat); the
    # console's guard only catches a stuck one, and a slow CPU (an emulator, a CM4 under
    # load) may take minutes to answer.
    Command("ask", "ask TEXT", "a text turn for the assistant: the reply is spoken and printed",
            cmd_ask, AssistantPorts, raw=True, timeout_s=600.0),
)

"""Console commands for translation and reading: `translate on|off|status`, `read`.

`translate on en zh` runs the router's action that "translate between English and Chinese"
runs by voice; the voice loop then translates every utterance until `translate off` or
"stop translating". `read` is a typed turn of the assistant, like `ask`: the text in view
is spoken (translated with `--translate LANG`) and printed.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from glasses_firmware.drivers.errors import GlassesError

from ..voice.intents import LANGUAGES
from .commands import Command, CommandError, as_json, take_flag
from .features import AssistantPorts, run_action

if TYPE_CHECKING:
    from ..voice.actions import ActionRouter
    from ..voice.translator import Translator

TRANSLATE_USAGE = ("translate on LANG LANG | translate off | translate status [--json] "
                   f"(LANG: {'|'.join(LANGUAGES)})")
READ_USAGE = f"read [--translate {'|'.join(LANGUAGES)}]"


@dataclass(frozen=True)
class TranslatePorts:
    """`translate on|off` run the router's actions (as the voice does); status is the translator's."""

    router: "ActionRouter"
    translator: "Translator"


async def cmd_translate(session, ports: TranslatePorts, args):
    args, js = take_flag(args, "--json")
    match args:
        case ["on", first, second]:
            return await run_action(ports.router, "translate", "converse",
                                    {"first": first.lower(), "second": second.lower()})
        case ["off"]:
            return await run_action(ports.router, "translate", "converse_off", {})
        case ["status"]:
            status = ports.translator.status()
            if js:
                return as_json(status)
            return _status_lines(ports.translator, status)
    raise CommandError(f"usage: {TRANSLATE_USAGE}")


def _status_lines(translator, status: dict) -> list[str]:
    if not status["on"]:
        return ["translation off"]
    lines = [f"translating {translator.describe()}: {status['turns']} turns"]
    if status["median_latency_s"] is not None:
        lines.append(f"median {status['median_latency_s']:.2f} s from end of speech to the "
                     "translation's first audio")
    last = status["last"]
    if last:
        lines.append(f"last {last['source']}->{last['target']} {last['latency_s']:.2f} s: "
                     f"{last['translation']}")
    return lines


async def cmd_read(session, ports: AssistantPorts, args):
    target = None
    if args[:1] == ["--translate"]:
        if len(args) != 2 or args[1].lower() not in LANGUAGES:
            raise CommandError(f"usage: {READ_USAGE}")
        target, args = args[1].lower(), []
    if args:
        raise CommandError(f"usage: {READ_USAGE}")
    try:
        outcome = await ports.assistant.act("read", translate_to=target)
    except GlassesError as e:
        raise CommandError(f"read refused: {e}") from None
    return list(outcome.lines)


COMMANDS = (
    Command("translate", "translate on LANG LANG|off|status [--json]",
            "conversation translation between two languages, both directions", cmd_translate,
            TranslatePorts),
    Command("read", READ_USAGE, "read the text in view aloud (and print it); --translate LANG "
            "translates it first", cmd_read, AssistantPorts),
)

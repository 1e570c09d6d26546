"""Console commands for the phone link: `phone [--json]`, `phone pair [accept|reject]`,
`phone forget`, `phone notifications on|off` (docs/phone.md)."""

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glasses_firmware.drivers.errors import GlassesError

from .commands import Command, CommandError, as_json, take_flag

if TYPE_CHECKING:
    from ..phone.bluez import PhoneLink
    from ..phone.companion import Companion

USAGE = "phone [--json] | phone pair [accept|reject] | phone forget | phone notifications on|off"


@dataclass(frozen=True)
class PhonePorts:
    board_name: str
    link: "PhoneLink | None"        # None: the board has no Bluetooth
    companion: "Companion | None"   # Gadgetbridge over the link; None without it


async def cmd_phone(session, ports: PhonePorts, args):
    link = ports.link
    args, js = take_flag(args, "--json")
    if link is None:
        raise CommandError(f"this board ({ports.board_name}) has no Bluetooth: no [bluetooth] table "
                           "in its board file")
    companion = ports.companion
    try:
        match args:
            case []:
                status = dict(link.status(), **companion.status())
                return as_json(status) if js else _lines(status)
            case ["pair"]:
                return [await link.pair(), "confirm the code on the glasses with the action button "
                        "pressed twice (or `phone pair accept`)"]
            case ["pair", "accept" | "reject" as answer]:
                if not link.answer_pairing(answer == "accept", "console"):
                    raise CommandError("no pairing is waiting for confirmation; `phone pair` opens "
                                       "the pairing window")
                return [f"pairing {answer}ed"]
            case ["forget"]:
                return [await link.forget()]
            case ["notifications", "on" | "off" as state]:
                companion.notifications = state == "on"
                return [f"phone notifications {state}"]
    except GlassesError as e:
        raise CommandError(f"phone: {e}") from None
    raise CommandError(f"usage: {USAGE}")


COMMANDS = (
    Command("phone", USAGE, "the paired phone: state, pairing, the companion app (Gadgetbridge)",
            cmd_phone, PhonePorts),
)


def _lines(s: dict) -> list[str]:
    paired = s["paired"]
    seen = "never" if s["last_seen"] is None else \
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s["last_seen"])) + " UTC"
    lines = [f"phone        {s['state']}",
             f"bluetooth    {s['adapter']} as {s['name']!r}, {'powered' if s['powered'] else 'off'}",
             f"paired       {paired['name'] + ' ' + paired['address'] if paired else 'none'}",
             f"connected    {'yes' if s['connected'] else 'no'}",
             f"companion    {'linked' if s['companion'] else 'not linked'} (Gadgetbridge), "
             f"{s['lines_in']} lines in, {s['errors']} ignored",
             f"notifications {'on' if s['notifications'] else 'off'}, {s['held']} held",
             f"last seen    {seen}"]
    if s["confirm"]:
        lines.append(f"confirm      {s['confirm']['device']} code {s['confirm']['passkey']}: "
                     "press the action button twice")
    if s["pairing_s_left"]:
        lines.append(f"pairing      open, {s['pairing_s_left']:.0f} s left")
    if s["error"]:
        lines.append(f"error        {s['error']}")
    return lines

"""The `sim ...` console group (docs/contracts.md, sim control): the physical world of the sim board.

Each subcommand turns a knob on drivers.sim.hardware.SimHardware; the firmware then
sees the change only through its real drivers. On a real board the group answers ERR.
"""

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from glasses_firmware.drivers.errors import ConfigError, GlassesError

from ..ports import Blocking
from .calls import SIM_USAGE as CALL_USAGE, sim_phone_telephony
from .commands import Command, CommandError, is_count, split
from ..voice.cues import ESPEAK_VOICES, SpeechError, synthesize

if TYPE_CHECKING:
    from glasses_firmware.boards.schema import ButtonSpec
    from glasses_firmware.drivers.clock import SimClock
    from glasses_firmware.drivers.sim.hardware import SimHardware

WAV_HINT = "a 16-bit PCM WAV file, mono or stereo, 8 to 192 kHz"
CLICK_HOLD_S = 0.08
DOUBLE_GAP_S = 0.1

USAGE = [
    "sim button NAME click|double|long|press|release",
    "sim say [--lang en|zh|ko] TEXT",
    "sim mic FILE.wav",
    "sim scene FILE|DIR|pattern",
    "sim wear on|off",
    "sim battery PERCENT",
    "sim charger on|off",
    "sim temp CELSIUS",
    "sim fault DEVICE nack|timeout|garbage|gone|clear",
    "sim led ok|broken",
    "sim advance SECONDS",
    "sim speaker",
    "sim phone [on|off | wallet approve|decline|silent | intents on|off | product DIGITS TEXT"
    " | notify APP TEXT | nav [METRES] TEXT | pair | line TEXT | garbage | " + CALL_USAGE + "]",
]


def _on_off(args, usage):
    if len(args) != 1 or args[0] not in ("on", "off"):
        raise CommandError(f"usage: {usage}")
    return args[0] == "on"


def _number(args, what, usage):
    """The one numeric argument of a subcommand."""
    if len(args) != 1:
        raise CommandError(f"usage: {usage}")
    try:
        return float(args[0])
    except ValueError:
        raise CommandError(f"{what} must be a number, got '{args[0][:20]}'; usage: {usage}") from None


@dataclass(frozen=True)
class SimPorts:
    """The sim board's physical world, and what a subcommand needs besides it."""

    sim: "SimHardware | None"     # None: a real board (the group answers ERR, `help` hides it)
    board_name: str
    buttons: dict[str, "ButtonSpec"]
    clock: "SimClock"             # the sim's clock (`sim advance`); press and hold times
    blocking: Blocking
    sample: Callable[[], object]  # read the sensors now: the firmware sees the change at once


async def cmd_sim(session, ports: SimPorts, args):
    sim = ports.sim
    if sim is None:
        raise CommandError(f"sim commands work only on the sim board; this is {ports.board_name}")
    if not args or not args[0].strip():
        return USAGE
    sub, _, tail = args[0].strip().partition(" ")
    # `sim say` takes its text as typed (apostrophes are words there); the rest is tokenized.
    rest = _say_args(tail) if sub == "say" else split(tail)
    if sub == "phone" and tail.startswith("line "):
        rest = ["line", tail[5:]]     # a phone line as typed: its quotes are JavaScript's
    handler = SUBCOMMANDS.get(sub)
    if handler is None:
        raise CommandError(f"unknown sim command '{sub[:20]}'; one of: {', '.join(SUBCOMMANDS)}")
    try:
        reply = await handler(ports, sim, rest)
        ports.sample()   # the firmware sees the changed world through its drivers at once
        return reply
    except (ValueError, OSError) as e:
        if isinstance(e, GlassesError):
            raise
        if isinstance(e, OSError):   # a file argument the OS refuses (/proc/self/mem, too long)
            raise CommandError(f"sim {sub}: cannot read '{str(e.filename or '')[:60]}' "
                               f"({e.strerror or e}); give a readable file") from None
        raise CommandError(str(e)) from None


def _say_args(tail: str) -> list[str]:
    """["--lang", "zh", "text as typed"] or ["text as typed"]."""
    words = tail.split(None, 2)
    if words[:1] == ["--lang"]:
        return words
    return [tail.strip()] if tail.strip() else []


async def sim_button(ports, sim, args):
    usage = "sim button NAME click|double|long|press|release"
    if len(args) != 2:
        raise CommandError(f"usage: {usage}")
    name, action = args
    spec = ports.buttons.get(name)
    if spec is None:
        raise CommandError(f"no button '{name[:20]}'; one of: {', '.join(ports.buttons)}")
    pin, clock = spec.pin, ports.clock
    if action == "press":
        sim.gpio.press(pin)
    elif action == "release":
        sim.gpio.release(pin)
    elif action in ("click", "double"):
        for i in range(1 if action == "click" else 2):
            if i:
                await clock.asleep(DOUBLE_GAP_S)
            sim.gpio.press(pin)
            await clock.asleep(CLICK_HOLD_S)
            sim.gpio.release(pin)
    elif action == "long":
        sim.gpio.press(pin)
        await clock.asleep(spec.long_press_s + 0.1)
        sim.gpio.release(pin)
    else:
        raise CommandError(f"usage: {usage}")
    return [f"button {name} {action}"]


async def sim_say(ports, sim, args):
    usage = "sim say [--lang en|zh|ko] TEXT"
    lang = "en"
    if args[:1] == ["--lang"]:
        if len(args) < 2 or args[1] not in ESPEAK_VOICES:
            raise CommandError(f"--lang must be one of {', '.join(ESPEAK_VOICES)}; usage: {usage}")
        lang, args = args[1], args[2:]
    text = " ".join(args).strip()
    if not text:
        raise CommandError(f"nothing to say; usage: {usage}")
    try:
        samples, rate = await ports.blocking.run(synthesize, text, lang)
    except SpeechError as e:
        raise CommandError(str(e)) from None
    seconds = sim.audio_source.play_samples(samples, rate)
    return [f"saying ({lang}, {seconds:.2f} s): {text}"]


async def sim_mic(ports, sim, args):
    if len(args) != 1:
        raise CommandError("usage: sim mic FILE.wav")
    path = Path(args[0]).expanduser()
    if not path.is_file():
        what = "not a regular file" if path.exists() else "no such file"
        raise CommandError(f"{what}: {path}; give a WAV file path")
    try:
        seconds = sim.audio_source.play_wav(path)
    except ConfigError as e:
        raise CommandError(f"{e}; give {WAV_HINT}") from None
    return [f"playing {path} into the microphones ({seconds:.2f} s)"]


async def sim_scene(ports, sim, args):
    if len(args) != 1:
        raise CommandError("usage: sim scene FILE|DIR|pattern")
    try:
        sim.scene.set(args[0])
    except ConfigError as e:
        hint = "" if "; give" in str(e) or "(give" in str(e) else \
            "; give 'pattern', a PNG or JPEG file or a folder of them"
        raise CommandError(f"{e}{hint}") from None
    return [f"scene {sim.scene.spec}"]


def _setting(usage: str, parse, apply, reply):
    """A `sim` subcommand that sets one physical quantity: parse, apply, say what it is now."""
    async def handler(ports, sim, args):
        value = parse(args, usage)
        apply(sim, value)
        return [reply(value)]
    return handler


def _number_of(what: str):
    return lambda args, usage: _number(args, what, usage)


sim_wear = _setting("sim wear on|off", _on_off, lambda sim, v: sim.set_worn(v),
                    lambda v: f"wear {'on' if v else 'off'}")
sim_battery = _setting("sim battery PERCENT", _number_of("PERCENT"),
                       lambda sim, v: sim.set_battery(v), lambda v: f"battery {v:g} %")
sim_charger = _setting("sim charger on|off", _on_off, lambda sim, v: sim.set_charger(v),
                       lambda v: f"charger {'on' if v else 'off'}")
sim_temp = _setting("sim temp CELSIUS", _number_of("CELSIUS"),
                    lambda sim, v: sim.set_temperature(v), lambda v: f"temperature {v:g} C")


async def sim_fault(ports, sim, args):
    if len(args) != 2:
        raise CommandError("usage: sim fault DEVICE nack|timeout|garbage|gone|clear")
    sim.set_fault(args[0], args[1])
    return [f"fault {args[0]} {args[1]}"]


async def sim_led(ports, sim, args):
    if args == ["broken"]:
        sim.gpio.break_readback()
    elif args == ["ok"]:
        sim.gpio.repair_readback()
    else:
        raise CommandError("usage: sim led ok|broken")
    return [f"capture LED read-back {args[0]}"]


async def sim_advance(ports, sim, args):
    seconds = _number(args, "SECONDS", "sim advance SECONDS")
    if not 0 <= seconds <= 7 * 86400:
        raise CommandError("SECONDS must be between 0 and 604800 (a week)")
    ports.clock.advance(seconds)
    return [f"advanced {seconds:g} s"]


async def sim_speaker(ports, sim, args):
    if args:
        raise CommandError("usage: sim speaker")
    lines = []
    for path in sim.speaker_files():
        with wave.open(str(path)) as w:
            lines.append(f"{path}  {w.getnframes() / w.getframerate():.2f} s")
    return lines or ["(nothing played yet)"]


async def sim_phone(ports, sim, args):
    """The wearer's phone (Gadgetbridge on Android, drivers/sim/bluetooth.py): in range or
    not, what its wallet answers, what a product looks up to, what it sends the glasses.
    Without arguments: its state and every payment handed to it."""
    usage = USAGE[-1]
    phone = sim.phone
    if phone is None:
        raise CommandError("this sim board has no phone: its board file has no [bluetooth] table")
    await phone.ready()
    try:
        telephony = await sim_phone_telephony(sim, args)    # call, hangup, music (calls.py)
        if telephony is not None:
            return telephony
        match args:
            case []:
                lines = [f"phone {'on' if phone.present else 'off'}, wallet {phone.wallet}, "
                         f"{len(phone.products)} products, {len(phone.payments)} payments received",
                         f"gadgetbridge {'linked' if phone.linked else 'not linked'}, "
                         f"{phone.sent} lines sent, {len(phone.received)} received"]
                if getattr(sim, "telephony", None) is not None:
                    lines += await sim.telephony.describe()
                return lines + [f"received {p['payee']} {p['amount']} {p['currency']} ({p['scheme']}) "
                                f"intent {p['data'][:120]}" for p in phone.payments]
            case ["on" | "off" as state]:
                await phone.set_present(state == "on")
                if getattr(sim, "telephony", None) is not None:   # its calls and music too
                    await sim.telephony.set_connected(state == "on")
            case ["wallet", "approve" | "decline" | "silent" as answer]:
                phone.wallet = answer
            case ["intents", "on" | "off" as state]:
                phone.intents = state == "on"
            case ["product", digits, *words] if is_count(digits) and words:
                phone.products[digits] = " ".join(words)
            case ["notify", app, *words] if words:
                await phone.send({"t": "notify", "id": int(ports.clock.wall()) % 100000, "src": app,
                                  "title": "", "body": " ".join(words), "sender": app})
            case ["nav", *words] if words:
                distance = words.pop(0) if len(words) > 1 and is_count(words[0]) else None
                nav = {"t": "nav", "instr": " ".join(words), "action": "continue"}
                if distance is not None:
                    nav["distance"] = int(distance)
                await phone.send(nav)
            case ["pair"]:
                code = await phone.pair()
                return [f"phone asked to pair; the glasses should show code {code:06d}"]
            case ["line", *words] if words:
                await phone.write((" ".join(words) + "\n").encode())
            case ["garbage"]:
                await phone.write(bytes(range(256)) * 3 + b"\n\x10GB({t:\"notify\",body:\"unterminated\n"
                                  + b"GB({t:1})\n" + b"x" * 20000 + b"\n")
            case _:
                raise CommandError(f"usage: {usage}")
    except GlassesError as e:
        raise CommandError(f"sim phone: {e}") from None
    return [f"phone {' '.join(args)}"]


SUBCOMMANDS = {
    "button": sim_button, "say": sim_say, "mic": sim_mic, "scene": sim_scene,
    "wear": sim_wear, "battery": sim_battery, "charger": sim_charger, "temp": sim_temp,
    "fault": sim_fault, "led": sim_led, "advance": sim_advance, "speaker": sim_speaker,
    "phone": sim_phone,
}


COMMANDS = (
    Command("sim", "sim SUBCOMMAND ...", "sim board only: buttons, speech, scene, wear, battery, faults",
            cmd_sim, SimPorts, raw=True, details=tuple(USAGE),
            listed=lambda ports: ports.sim is not None),
)

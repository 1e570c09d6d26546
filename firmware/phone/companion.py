"""The companion app (stock Gadgetbridge, as with a Bangle.js) as the firmware's Phone port.

Over the Nordic UART (bluez.PhoneLink): phone lines are parsed (gadgetbridge.py) and acted on;
our answers go back as JSON lines.

- Notifications (`notify`) and navigation (`nav`) are spoken short (app and a trimmed text;
  instruction and distance) and printed as `EVT phone notify ...` / `EVT phone nav ...`.
  They are held while the wearer talks or the assistant answers (`busy()`), then spoken.
- `pay(request)`: the payment URI handed to the wallet app as an Android intent
  (`{"t":"intent","target":"activity","action":"android.intent.action.VIEW","data":URI,...}`),
  answered by a `GB({t:"wallet",id,status,ref|reason})` line (sent through Gadgetbridge's
  `com.banglejs.uart.tx` broadcast by the wallet hand-off's Tasker task; docs/phone.md).
  Gadgetbridge's own `{t:"intent",err}` (intents disabled) fails it at once.
- `lookup(code)`: Gadgetbridge's `http` request, `{t:"http",id,resp|err}` back (Open Food
  Facts by default).
  Both: Unreachable when the companion is not linked, goes away while waiting, or does not
  answer within the deadline.
- Calls and music (for firmware/phone/calls.py and media.py): `on_call(fn)` registers
  `fn({"cmd", "name", "number"})` for Gadgetbridge's `call` lines (cmd: incoming, outgoing,
  accept, start, reject, end); `on_music(fn)` registers `fn(kind, fields)` for `musicinfo`
  (artist, album, track, dur, c, n) and `musicstate` (state, position, shuffle, repeat);
  `send_call("ACCEPT"|"REJECT"|"END"|...)` and `send_music("play"|"pause"|"next"|...)`
  send the watch's control lines. Callbacks run on the loop and must not block.
"""

import asyncio
import itertools
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Callable

from glasses_firmware.drivers.errors import GlassesError, Unreachable

from ..ports import Clock, EventSink, Speaks
from ..tasks import spawn
from .gadgetbridge import (LineBuffer, Message, ProtocolError, form_watch_line, parse_phone_line,
                           plain_text)

log = logging.getLogger("glasses.phone")

INTENT_VIEW = "android.intent.action.VIEW"


@dataclass(frozen=True)
class CompanionSettings:
    pay_timeout_s: float = 20.0       # the payment flow's own deadline (15 s) normally ends it first
    lookup_timeout_s: float = 6.0     # under the flow's 8 s, so the wearer hears why
    lookup_url: str = "https://world.openfoodfacts.org/api/v2/product/{code}.json?fields=product_name,brands"
    spoken_chars: int = 140           # a notification's text is cut to this, at a word
    hold_notification_s: float = 120.0   # held longer than this while busy: dropped, not spoken late
    hold_nav_s: float = 20.0          # a turn instruction is stale sooner
    held_max: int = 5
    garbage_events: int = 5           # protocol errors reported as events before going quiet


class Companion:
    """Implements the Phone port (ports.py) over the Gadgetbridge channel."""

    def __init__(self, link, speech: Speaks, events: EventSink, clock: Clock,
                 busy: Callable[[], bool], settings: CompanionSettings = CompanionSettings()):
        self.link, self.speech, self.events, self.clock = link, speech, events, clock
        self.busy, self.settings = busy, settings
        link.on_write, link.on_link = self.feed, self._linked
        self.notifications = True         # console `phone notifications on|off`
        self.lines_in = self.errors = 0
        self._buffer = LineBuffer()
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[str, asyncio.Future]] = {}   # id -> (kind, answer)
        self._held: deque = deque()
        self._announcer: asyncio.Task | None = None
        self._call_listeners: list[Callable[[dict], None]] = []
        self._music_listeners: list[Callable[[str, dict], None]] = []
        self.last_call: dict | None = None
        self.last_music: dict = {}

    # The Phone port.
    @property
    def name(self) -> str:
        p = self.link.phone
        return "phone" if p is None else (p.get("Alias") or p.get("Name") or "phone")

    @property
    def connected(self) -> bool:
        return self.link.subscribed

    async def pay(self, request: dict) -> dict:
        """{"status": "paid", "reference"} or {"status": "declined", "reason"}; Unreachable."""
        ident = f"pay{request.get('id', next(self._ids))}"
        extra = {"glasses_id": ident}
        extra.update({k: str(request[k]) for k in ("payee", "amount", "currency", "scheme", "reference")
                      if request.get(k) not in (None, "")})
        answer = await self._ask("wallet", ident, {
            "t": "intent", "target": "activity", "action": INTENT_VIEW,
            "data": request.get("url") or request.get("code") or "", "extra": extra},
            self.settings.pay_timeout_s, "the payment hand-off")
        status = str(answer.get("status", "")).lower()
        if status == "paid":
            return {"status": "paid", "reference": str(answer.get("ref") or answer.get("reference") or "")[:40]}
        if status in ("declined", "cancelled", "canceled", "failed"):
            return {"status": "declined", "reason": str(answer.get("reason") or f"the wallet said {status}")[:120]}
        raise PhoneAnswerError(f"the wallet's answer is not paid or declined: {json.dumps(answer)[:80]}")

    async def lookup(self, code: str) -> str | None:
        """The product's name (and brand) from the phone's look-up; None if it is unknown."""
        ident = f"look{next(self._ids)}"
        answer = await self._ask("http", ident, {
            "t": "http", "id": ident, "url": self.settings.lookup_url.format(code=code)},
            self.settings.lookup_timeout_s, "the product look-up")
        if "err" in answer:
            raise Unreachable(f"the phone could not look it up ({str(answer['err'])[:80]})")
        try:
            body = json.loads(answer.get("resp") or "{}")
        except json.JSONDecodeError:
            raise PhoneAnswerError("the phone's look-up answer is not JSON") from None
        product = body.get("product") if isinstance(body, dict) else None
        if not isinstance(product, dict) or not product.get("product_name"):
            return None
        name, brand = str(product["product_name"])[:80], str(product.get("brands") or "")[:40]
        return f"{name} ({brand})" if brand and brand.lower() not in name.lower() else name

    async def _ask(self, kind: str, ident: str, message: dict, timeout_s: float, what: str) -> dict:
        if not self.connected:
            raise Unreachable(f"the phone is not connected, so {what} did not reach it")
        answer = asyncio.get_running_loop().create_future()
        self._waiting[ident] = (kind, answer)
        try:
            self.send(message)
            return await asyncio.wait_for(answer, timeout_s)
        except asyncio.TimeoutError:
            raise Unreachable(f"the phone did not answer {what} within {timeout_s:g} s") from None
        finally:
            self._waiting.pop(ident, None)

    # For calls and music.
    def on_call(self, fn: Callable[[dict], None]) -> None:
        self._call_listeners.append(fn)

    def on_music(self, fn: Callable[[str, dict], None]) -> None:
        self._music_listeners.append(fn)

    def send_call(self, n: str) -> None:
        self.send({"t": "call", "n": n.upper()})

    def send_music(self, n: str) -> None:
        self.send({"t": "music", "n": n.lower()})

    def send(self, message: dict) -> None:
        """One JSON line to the phone; Unreachable if the companion is not linked."""
        try:
            self.link.notify(form_watch_line(message))
        except Unreachable:
            raise
        except GlassesError as e:
            raise Unreachable(f"cannot reach the phone: {e}") from None

    # From the link.
    def _linked(self, up: bool) -> None:
        if up:
            try:
                self.send({"t": "ver", "fw": "glasses", "hw": "glasses"})
            except Unreachable:
                pass
            return
        for ident, (kind, answer) in list(self._waiting.items()):
            if not answer.done():
                answer.set_exception(Unreachable("the phone went away before answering"))
        self._buffer = LineBuffer()

    def feed(self, data: bytes) -> None:
        """Bytes written by the phone; never raises (garbage is an event, then a log line)."""
        for item in self._buffer.feed(data):
            if isinstance(item, ProtocolError):
                self._garbage(item)
                continue
            try:
                message = parse_phone_line(item)
            except ProtocolError as e:
                self._garbage(e)
                continue
            if message is not None:
                self.lines_in += 1
                try:
                    self._dispatch(message)
                except (GlassesError, ValueError, TypeError, KeyError, AttributeError) as e:
                    self._garbage(ProtocolError(f"{message.kind}: {e}"))

    def _garbage(self, e: Exception) -> None:
        self.errors += 1
        if self.errors <= self.settings.garbage_events:
            self.events.emit("phone", f"ignored a line from the phone: {e}")
        else:
            log.info("ignored a line from the phone: %s", e)

    def _dispatch(self, m: Message) -> None:
        f = m.fields
        if m.kind == "notify":
            self._notification(f)
        elif m.kind == "nav":
            self._navigation(f)
        elif m.kind == "call":
            info = {"cmd": str(f.get("cmd", "")).lower(), "name": _text(f.get("name")),
                    "number": _text(f.get("number"))}
            self.last_call = info
            self.events.emit("phone", f"call {info['cmd']} {info['name'] or info['number']}".rstrip())
            for fn in self._call_listeners:
                fn(info)
        elif m.kind in ("musicinfo", "musicstate"):
            self.last_music[m.kind] = f
            what = (f"{_text(f.get('artist'))} - {_text(f.get('track'))}" if m.kind == "musicinfo"
                    else _text(f.get("state")))
            self.events.emit("phone", f"music {m.kind[5:]} {what}")
            for fn in self._music_listeners:
                fn(m.kind, f)
        elif m.kind in ("http", "wallet"):
            waiting = self._waiting.get(str(f.get("id", "")))
            if waiting is not None and waiting[0] == m.kind and not waiting[1].done():
                waiting[1].set_result(f)
            else:
                log.info("an answer nobody waits for: %s %s", m.kind, f.get("id"))
        elif m.kind == "intent" and "err" in f:
            err = str(f["err"])[:120]
            self.events.emit("phone", f"intent refused: {err}")
            for kind, answer in self._waiting.values():
                if kind == "wallet" and not answer.done():
                    answer.set_exception(PhoneAnswerError(f"the phone refused the hand-off: {err}"))
        elif m.kind == "notify-":
            ident = f.get("id")
            self._held = deque(h for h in self._held if h[3] != ident)
        else:
            log.debug("phone line %s not used", m.kind)

    def _notification(self, f: dict) -> None:
        who = _text(f.get("src")) or _text(f.get("sender")) or "a notification"
        body = " ".join(t for t in (_text(f.get("title")), _text(f.get("body"))) if t)
        body = _trim(body, self.settings.spoken_chars)
        self.events.emit("phone", f"notify {who}: {body}")
        if self.notifications:
            self._announce(f"{who}: {body}" if body else who, self.settings.hold_notification_s,
                           f.get("id"))

    def _navigation(self, f: dict) -> None:
        instr = _trim(_text(f.get("instr")), 100)
        if not instr:
            self.events.emit("phone", "nav ended")
            return
        distance = _distance(f.get("distance"))
        said = f"In {distance}, {instr[0].lower() + instr[1:]}" if distance else instr
        self.events.emit("phone", f"nav {instr}" + (f" in {distance}" if distance else ""))
        self._held = deque(h for h in self._held if h[3] != "nav")   # only the latest turn matters
        self._announce(said, self.settings.hold_nav_s, "nav")

    # Speaking, never over the wearer or the assistant.
    def _announce(self, text: str, keep_s: float, key) -> None:
        while len(self._held) >= self.settings.held_max:
            self._held.popleft()
        self._held.append((text, self.clock.monotonic(), keep_s, key))
        if self.busy() or self.speech.busy:
            self.events.emit("phone", f"held {len(self._held)} while the wearer or the assistant speaks")
        if self._announcer is None or self._announcer.done():
            self._announcer = spawn(self._announce_loop(), name="phone-announce")

    async def _announce_loop(self) -> None:
        while self._held:
            if self.busy() or self.speech.busy:
                await self.clock.asleep(0.2)
                continue
            text, at, keep_s, _key = self._held.popleft()
            if self.clock.monotonic() - at > keep_s:
                self.events.emit("phone", f"dropped (stale after {keep_s:g} s): {text[:60]}")
                continue
            await self.speech.say(text)
            await self.speech.drain()

    def status(self) -> dict:
        return {"companion": self.connected, "notifications": self.notifications,
                "lines_in": self.lines_in, "errors": self.errors, "held": len(self._held),
                "waiting": len(self._waiting), "call": self.last_call}


class PhoneAnswerError(GlassesError, ValueError):
    """The phone answered, but not with something we can use; says what came."""


def _text(value) -> str:
    return "" if value is None else plain_text(str(value))


def _trim(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]) + "..."


def _distance(value) -> str:
    """Gadgetbridge's distance (a string like "300m" or a number of metres) as spoken."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        metres = float(value)
        if metres >= 1000:
            return f"{metres / 1000:.1f} kilometres"
        return f"{round(metres / 10) * 10:.0f} metres" if metres >= 20 else f"{metres:.0f} metres"
    return _trim(_text(value), 20)

"""Gadgetbridge's Bangle.js line protocol: the lines a phone writes, and the lines we answer.

Phone to glasses (written to the Nordic UART RX characteristic, in chunks of the MTU): a
line `\\x10GB({...})\\n`, where `{...}` is Gadgetbridge's "JSON-ish" JavaScript literal
(BangleJSDeviceSupport.jsonToString): keys unquoted, strings with JavaScript escapes
(`\\xHH`, `\\0`..`\\7`, `\\v`) or `atob("base64")` when that is shorter. Other lines are
Espruino JavaScript (`setTime(...)`, the `\\x03` that clears a line) and are ignored.
Glasses to phone (notified on TX): one strict JSON object a line, ended `\\r\\n` (Gadgetbridge
drops the character before the newline, as Bangle.js's println sends `\\r\\n`).

`LineBuffer.feed(chunk)` joins GATT writes into lines; `parse_phone_line(line)` gives a
`Message(kind, fields)` or raises `ProtocolError` saying what was wrong. docs/phone.md cites
where each format was read.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from glasses_firmware.drivers.errors import GlassesError

MAX_LINE_BYTES = 16 * 1024        # a notification with a rendered emoji bitmap stays under this
MAX_TEXT = 2000                   # characters kept of any one string field
MAX_DEPTH = 8


class ProtocolError(GlassesError, ValueError):
    """A line from the phone is not Gadgetbridge's format; the message says where and what."""


@dataclass(frozen=True)
class Message:
    kind: str                      # notify, notify-, call, musicinfo, musicstate, nav, http, intent, ...
    fields: dict = field(default_factory=dict)


class LineBuffer:
    """Joins the chunks of GATT writes into lines (bytes, without the newline).

    A line longer than `max_bytes` is dropped up to its newline and reported once as a
    ProtocolError in the results, never kept growing.
    """

    def __init__(self, max_bytes: int = MAX_LINE_BYTES):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._dropping = False

    def feed(self, chunk: bytes) -> list:
        """Complete lines (bytes) and ProtocolErrors, in order."""
        out: list = []
        for part in re.split(rb"(\n)", bytes(chunk)):
            if part == b"\n":
                if self._dropping:
                    self._dropping = False
                else:
                    out.append(bytes(self._buf))
                self._buf.clear()
                continue
            if self._dropping or not part:
                continue
            self._buf += part
            if len(self._buf) > self.max_bytes:
                out.append(ProtocolError(f"a line from the phone passed {self.max_bytes} bytes "
                                         "without a newline; dropped"))
                self._buf.clear()
                self._dropping = True
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def parse_phone_line(line: bytes | str) -> Message | None:
    """One phone line as a Message; None for Espruino JavaScript we do not run (setTime...).

    ProtocolError for anything else: not text, an unbalanced literal, a GB() without `t`.
    """
    if isinstance(line, bytes):
        # Gadgetbridge encodes ISO-8859-1 but puts UTF-8 into strings; accept both.
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("latin-1")
    else:
        text = line
    text = text.strip().lstrip("\x10\x03").strip()
    if not text:
        return None
    if not text.startswith("GB("):
        if re.match(r"^[A-Za-z_$][\w$.]*\(", text) or text.startswith(("(", "E.", "require(")):
            return None              # Espruino JavaScript (setTime, E.setTimeZone): not ours to run
        raise ProtocolError(f"not a Gadgetbridge line: {text[:60]!r}")
    body = text[3:].rstrip().rstrip(";").rstrip()
    if not body.endswith(")"):
        raise ProtocolError(f"GB( without its closing parenthesis: {text[:60]!r}")
    value = JsLiteral(body[:-1]).parse()
    if not isinstance(value, dict) or not isinstance(value.get("t"), str):
        raise ProtocolError(f"GB() needs an object with a string 't': {text[:60]!r}")
    kind = value.pop("t")
    return Message(kind[:40], {k: _trim(v) for k, v in value.items()})


def _trim(value):
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list):
        return [_trim(v) for v in value[:100]]
    if isinstance(value, dict):
        return {k: _trim(v) for k, v in list(value.items())[:100]}
    return value


def plain_text(text: str) -> str:
    """What can be said of a Gadgetbridge string: its inline images dropped, controls spaced.

    With "text as bitmaps" on, Gadgetbridge renders words a watch font lacks (emoji, CJK)
    as Espruino images inline: `\0`, width, height, bits per pixel (+128: a transparent
    colour byte follows), then the pixels (BangleJSDeviceSupport.renderUnicodeWordAsImage).
    """
    out, i = [], 0
    while i < len(text):
        if text[i] == "\0" and i + 3 < len(text):
            w, h, bpp = ord(text[i + 1]), ord(text[i + 2]), ord(text[i + 3])
            header = 4 if bpp & 128 else 3
            i += 1 + header + ((w * h * (bpp & 127)) + 7) // 8
            continue
        out.append(text[i] if text[i].isprintable() else " ")
        i += 1
    return " ".join("".join(out).split())


def form_watch_line(message: dict) -> bytes:
    """One line to the phone: strict JSON with a string 't', ASCII only, ended CR LF."""
    if not isinstance(message.get("t"), str):
        raise ValueError("a message to the phone needs a string 't'")
    return json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode() + b"\r\n"


class JsLiteral:
    """A recursive-descent reader for the JavaScript literals Gadgetbridge writes."""

    _NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
    _NAME = re.compile(r"[A-Za-z_$][\w$]*")
    _ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
                '"': '"', "'": "'", "\\": "\\", "/": "/"}

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def fail(self, what: str):
        raise ProtocolError(f"{what} at character {self.i} of {self.s[:60]!r}")

    def parse(self):
        value = self.value(0)
        self.space()
        if self.i != len(self.s):
            self.fail("unexpected text after the value")
        return value

    def space(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def value(self, depth: int):
        if depth > MAX_DEPTH:
            self.fail("nested too deep")
        self.space()
        if self.i >= len(self.s):
            self.fail("the line ends where a value should be")
        c = self.s[self.i]
        if c == "{":
            return self.obj(depth)
        if c == "[":
            return self.array(depth)
        if c in "\"'":
            return self.string()
        m = self._NUMBER.match(self.s, self.i)
        if m:
            self.i = m.end()
            number = m.group(0)
            return float(number) if any(ch in number for ch in ".eE") else int(number)
        m = self._NAME.match(self.s, self.i)
        if m:
            self.i = m.end()
            name = m.group(0)
            if name in ("true", "false"):
                return name == "true"
            if name in ("null", "undefined"):
                return None
            if name == "atob":
                return self.atob()
            self.fail(f"unknown name {name!r}")
        self.fail(f"unexpected {c!r}")

    def obj(self, depth: int) -> dict:
        self.i += 1
        out = {}
        while True:
            self.space()
            if self.i < len(self.s) and self.s[self.i] == "}":
                self.i += 1
                return out
            if self.i < len(self.s) and self.s[self.i] in "\"'":
                key = self.string()
            else:
                m = self._NAME.match(self.s, self.i)
                if not m:
                    self.fail("expected a key")
                key, self.i = m.group(0), m.end()
            self.space()
            if self.s[self.i:self.i + 1] != ":":
                self.fail("expected ':'")
            self.i += 1
            out[key] = self.value(depth + 1)
            self.space()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
            elif c != "}":
                self.fail("expected ',' or '}'")

    def array(self, depth: int) -> list:
        self.i += 1
        out = []
        while True:
            self.space()
            if self.s[self.i:self.i + 1] == "]":
                self.i += 1
                return out
            out.append(self.value(depth + 1))
            self.space()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
            elif c != "]":
                self.fail("expected ',' or ']'")

    def string(self) -> str:
        quote = self.s[self.i]
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                self.fail("unterminated string")
            c = self.s[self.i]
            self.i += 1
            if c == quote:
                return "".join(out)
            if c != "\\":
                out.append(c)
                continue
            if self.i >= len(self.s):
                self.fail("unterminated escape")
            e = self.s[self.i]
            self.i += 1
            if e in self._ESCAPES:
                out.append(self._ESCAPES[e])
            elif e == "x":
                out.append(chr(self._hex(2)))
            elif e == "u":
                out.append(chr(self._hex(4)))
            elif e in "01234567":
                digits = e
                while len(digits) < 3 and self.s[self.i:self.i + 1] in tuple("01234567"):
                    digits += self.s[self.i]
                    self.i += 1
                out.append(chr(int(digits, 8) & 0xFF))
            else:
                out.append(e)         # JavaScript keeps an unknown escape's character

    def _hex(self, n: int) -> int:
        digits = self.s[self.i:self.i + n]
        if len(digits) != n or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
            self.fail(f"bad \\x or \\u escape {digits!r}")
        self.i += n
        return int(digits, 16)

    def atob(self) -> str:
        self.space()
        if self.s[self.i:self.i + 1] != "(":
            self.fail("expected '(' after atob")
        self.i += 1
        self.space()
        if self.s[self.i:self.i + 1] not in ("'", '"'):
            self.fail("atob needs a string")
        encoded = self.string()
        self.space()
        if self.s[self.i:self.i + 1] != ")":
            self.fail("expected ')' after atob's string")
        self.i += 1
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self.fail("atob's string is not base64")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

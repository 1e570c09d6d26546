"""Console input framing: bytes in, complete command lines (or a reason to refuse) out.

The serial line is hostile: noise, binary garbage, a paste of a megabyte, a cable pulled
in the middle of a line. The reader never grows without bound and never raises; each
finished line is either text to run or an error to answer with `ERR`.
"""

import unicodedata
from dataclasses import dataclass

MAX_LINE_BYTES = 1024


@dataclass(frozen=True)
class Line:
    text: str | None        # the command, when the line is acceptable
    error: str | None       # why it is refused, otherwise


def _check(raw: bytes) -> Line:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Line(None, f"invalid UTF-8 at byte {e.start}; send plain UTF-8 text")
    for i, ch in enumerate(text):
        if ch != "\t" and unicodedata.category(ch) == "Cc":   # C0, DEL and C1 controls
            return Line(None, f"control byte 0x{ord(ch):02x} at position {i}; "
                              "send printable text ending in a newline")
    return Line(text.strip(), None)


class LineReader:
    """Feed bytes, get Lines. `\\n` ends a line; a `\\r` before it is dropped."""

    def __init__(self, max_bytes: int = MAX_LINE_BYTES):
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._overlong = False     # inside a line already known to be too long

    def feed(self, data: bytes) -> list[Line]:
        out = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if not self._overlong:
                self._buf += chunk
                if len(self._buf) > self.max_bytes + 1:  # +1 for a trailing \r
                    self._overlong = True
                    self._buf.clear()
            if nl < 0:
                return out
            out.append(self._finish())
            start = nl + 1

    def _finish(self) -> Line:
        if self._overlong:
            self._overlong = False
            return Line(None, f"line longer than {self.max_bytes} bytes; send shorter commands")
        raw = bytes(self._buf)
        self._buf.clear()
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if len(raw) > self.max_bytes:
            return Line(None, f"line longer than {self.max_bytes} bytes; send shorter commands")
        return _check(raw)

    def reset(self) -> None:
        """Forget a partial line (the cable was pulled mid-line)."""
        self._buf.clear()
        self._overlong = False

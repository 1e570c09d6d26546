"""Progress on stderr for long model work: bytes and percent, and one line per phase.

On a terminal a line is redrawn in place; in a log (CI, a pipe) only every quarter is
printed, so a 500 MB join does not write hundreds of lines.
"""

import sys
import time

QUIET_BELOW_BYTES = 16_000_000   # small files are done before a progress line could help


class Progress:
    """Where `glasses models install` tells the user what it is doing."""

    def __init__(self, out=None):
        self.out = out if out is not None else sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._quarter = -1

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def bytes(self, label: str, done: int, total: int, started: float) -> None:
        """Report `done` of `total` bytes of `label` since monotonic time `started`."""
        if total < QUIET_BELOW_BYTES:
            return
        pct = 100.0 * done / total if total else 100.0
        rate = done / max(time.monotonic() - started, 1e-3) / 1e6
        text = f"  {label}: {done / 1e6:7.1f}/{total / 1e6:.1f} MB {pct:5.1f}% {rate:6.0f} MB/s"
        if self.tty:
            self.out.write("\r" + text + ("\n" if done >= total else ""))
            self.out.flush()
            return
        quarter = int(pct // 25)
        if quarter != self._quarter:
            self._quarter = quarter
            self.say(text)
        if done >= total:
            self._quarter = -1

    def ticking(self, label: str, elapsed_s: float) -> None:
        """A still-running phase: redrawn on a terminal, silent in a log."""
        if self.tty:
            self.out.write(f"\r  {label} ... {elapsed_s:4.0f} s")
            self.out.flush()

    def phase_done(self, label: str, elapsed_s: float, extra: str = "") -> None:
        if self.tty:
            self.out.write("\r\033[K")
        self.say(f"  {label}: {elapsed_s:.1f} s" + (f" ({extra})" if extra else ""))

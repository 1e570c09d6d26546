"""The serial diagnostics console: sessions over a UART, a pty, or the terminal.

Protocol (docs/contracts.md, console protocol): prompt `glasses> `; every reply ends in a line `OK` or
`ERR <what was wrong and what to try>`; `EVT ` lines never split a reply. Input is
framed by LineReader (1 KiB lines, UTF-8, no control bytes); lines that arrive faster
than they can be answered wait in a short queue and past it are dropped and counted.
"""

import asyncio
import logging

from glasses_firmware.drivers.errors import GlassesError

from ..events import EventBus
from ..ports import Clock
from .commands import BoundCommand, CommandError, split
from .lines import Line, LineReader
from .pin import PinGate

log = logging.getLogger("glasses.console")

PROMPT = "glasses> "
QUEUE_LINES = 16
COMMAND_TIMEOUT_S = 60.0


class Session:
    """One console conversation. `write(bytes)` sends to the peer (never blocks).

    `table` is the command table (table.build_table); `events` what `events on` listens to,
    `clock` the PIN lockout's; `version` and `board_name` are for the greeting line.
    """

    def __init__(self, table: dict[str, BoundCommand], write, *, events: EventBus, clock: Clock,
                 version: str, board_name: str, pin_hash: str = "", peer_echoes: bool = False):
        self.table = table
        self.events = events
        self.greeting = f"glasses {version} console on {board_name}; type help"
        # A terminal in cooked mode already ended the prompt line when Enter was echoed.
        self.peer_echoes = peer_echoes
        self._write = write
        self.reader = LineReader()
        self.gate = PinGate(pin_hash, clock)
        self.echo = False
        self.events_on = False
        self.dropped_lines = 0
        self._queue: asyncio.Queue[Line] = asyncio.Queue(maxsize=QUEUE_LINES)
        self._busy = False
        self._pending_events: list[str] = []
        self._on_idle_eof = None

    # Input side: called by the transport on the loop thread.
    def feed(self, data: bytes) -> None:
        if self.echo:
            self._write(data.replace(b"\n", b"\r\n"))
        for line in self.reader.feed(data):
            try:
                self._queue.put_nowait(line)
            except asyncio.QueueFull:
                self.dropped_lines += 1

    def has_room(self) -> bool:
        """Whether another line would be queued rather than dropped."""
        return self._queue.qsize() < QUEUE_LINES - 1

    def end_of_input(self, then) -> None:
        """The peer sent its last byte: `then()` once every line already read has run."""
        self._on_idle_eof = then
        if not self._busy and self._queue.empty():
            then()

    def disconnected(self) -> None:
        self.reader.reset()

    def send_lines(self, lines: list[str]) -> None:
        self._write(("\n".join(lines) + "\n").encode("utf-8", "replace"))

    def prompt(self) -> None:
        self._write(PROMPT.encode())

    async def next_line(self) -> Line:
        """The next framed input line, taken before it could run as a command (a secret)."""
        return await self._queue.get()

    async def serve(self) -> None:
        self.send_lines([self.greeting])
        self.prompt()
        try:
            while True:
                line = await self._queue.get()
                self._busy = True
                reply = await self.execute(line)
                # The newline ends the prompt line, so every reply line stands alone.
                self.send_lines(reply if self.peer_echoes or self.echo else [""] + reply)
                self._busy = False
                self._flush_events()
                self.prompt()
                if self._on_idle_eof is not None and self._queue.empty():
                    self._on_idle_eof()
        finally:
            self.set_events(False)

    # Events: queued while a reply is being written, so they never split one.
    def set_events(self, on: bool) -> None:
        if on and not self.events_on:
            self.events.subscribe(self._on_event)
        elif not on and self.events_on:
            self.events.unsubscribe(self._on_event)
        self.events_on = on

    def _on_event(self, text: str) -> None:
        self._pending_events.append(f"EVT {text}")
        if not self._busy:
            self._write(b"\n")
            self._flush_events()
            self.prompt()

    def _flush_events(self) -> None:
        events, self._pending_events = self._pending_events, []
        if events:
            self.send_lines(events)

    def visible_commands(self) -> list[BoundCommand]:
        """The commands `help` lists, in table order (`sim` only on the sim board)."""
        return [c for c in self.table.values() if c.listed]

    async def execute(self, line: Line) -> list[str]:
        if line.error:
            return [f"ERR {line.error}"]
        if not line.text:
            return ["OK"]
        limit = COMMAND_TIMEOUT_S
        try:
            name, *tail = line.text.split(None, 1)
            cmd = self.table.get(name)
            # Free text (ask) is taken as typed: apostrophes are words there, not quotes.
            rest = tail if cmd is not None and cmd.command.raw else split(line.text)[1:]
            if cmd is None:
                raise CommandError(f"unknown command '{name[:40]}'; type help for the list")
            if not self.gate.allows(name):
                raise CommandError("console locked; type login PIN first")
            limit = cmd.command.timeout_s or COMMAND_TIMEOUT_S
            lines = await asyncio.wait_for(cmd.run(self, rest), limit)
            return [_safe(x) for x in lines] + ["OK"]
        except asyncio.TimeoutError:
            return [f"ERR '{line.text[:40]}' did not finish within {limit:g} s; "
                    "check log, then retry"]
        except GlassesError as e:
            return [f"ERR {_one_line(e)}"]
        except Exception as e:  # a console command must never take the firmware down
            log.exception("console command %r failed", line.text[:80])
            return [f"ERR internal error ({type(e).__name__}: {_one_line(e)}); "
                    "see `log` and report it"]


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _safe(line: str) -> str:
    # A body line must not look like the end of a reply or an event.
    line = line.replace("\r", " ").replace("\n", " ")
    if line == "OK" or line.startswith(("ERR ", "EVT ")):
        return " " + line
    return line

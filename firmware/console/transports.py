"""Byte transports for console sessions: a pty (sim), the terminal, a serial port.

Each reads with the loop's add_reader and writes through a bounded buffer drained by
add_writer, so a peer that stops reading can never block the firmware; past the bound
output is dropped and counted, never half-written mid-reply silently.
"""

import asyncio
import concurrent.futures
import errno
import functools
import logging
import os
import stat
import sys
import threading
import tty
from pathlib import Path
from typing import Callable

from glasses_firmware.drivers.errors import ConfigError

from .session import Session
from .table import build_table

log = logging.getLogger("glasses.console")

OUT_LIMIT_BYTES = 1 << 20
READ_HANDOFF_TIMEOUT_S = 30.0


class _LoopGone(Exception):
    """The event loop closed (or stopped answering) under the file-reading thread."""


def pollable(fd: int) -> bool:
    """Whether the event loop can watch `fd`: not a regular file, nor /dev/null (epoll refuses both)."""
    mode = os.fstat(fd).st_mode
    return not (stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)))


class FdPipe:
    """Non-blocking reader/writer on one or two file descriptors.

    Terminals, pipes and ptys are watched by the loop. A regular file or /dev/null as input
    (`glasses run --console stdio < commands.txt`) is read by a thread, a line at a time
    and only when the session has room for it (`room()`), so no command is dropped; as
    output it is written directly.
    """

    def __init__(self, loop, read_fd: int, write_fd: int, on_data, on_eof, room=lambda: True):
        self.loop = loop
        self.read_fd, self.write_fd = read_fd, write_fd
        self.on_data, self.on_eof, self.room = on_data, on_eof, room
        self._out = bytearray()
        self.dropped_bytes = 0
        self._direct_out = not pollable(write_fd)
        if not self._direct_out:
            os.set_blocking(write_fd, False)
        self._stop = threading.Event()
        self._reader = None
        if pollable(read_fd):
            os.set_blocking(read_fd, False)
            loop.add_reader(read_fd, self._readable)
        else:
            self._reader = threading.Thread(target=self._read_file, name="console-file-input",
                                            daemon=True)
            self._reader.start()

    def _readable(self) -> None:
        try:
            data = os.read(self.read_fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the other end of a pty is closed
                log.warning("console read failed: %s", e)
            data = b""
        if data:
            self.on_data(data)
        else:
            self.loop.remove_reader(self.read_fd)
            self.on_eof()

    def _read_file(self) -> None:
        try:
            with os.fdopen(os.dup(self.read_fd), "rb") as f:
                for line in f:
                    while not self._on_loop(self.room):
                        if self._stop.wait(0.05):
                            return
                    self._on_loop(self.on_data, line)
            self._on_loop(self.on_eof)
        except _LoopGone:
            return       # the firmware is stopping: nobody to read for

    def _on_loop(self, fn, *args):
        """`fn(*args)` run on the loop, its result returned to this thread."""
        if self._stop.is_set():
            raise _LoopGone()
        future = concurrent.futures.Future()

        def run():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # handed back to the reading thread
                future.set_exception(e)
        try:
            self.loop.call_soon_threadsafe(run)
            return future.result(timeout=READ_HANDOFF_TIMEOUT_S)
        except (RuntimeError, concurrent.futures.TimeoutError):
            raise _LoopGone() from None

    def write(self, data: bytes) -> None:
        if self._direct_out:
            try:
                os.write(self.write_fd, data)
            except OSError as e:
                self.dropped_bytes += len(data)
                log.warning("console write failed (%s); dropped %d bytes", e, len(data))
            return
        if len(self._out) + len(data) > OUT_LIMIT_BYTES:
            self.dropped_bytes += len(data)
            return
        idle = not self._out
        self._out += data
        if idle:
            self._drain()

    def _drain(self) -> None:
        try:
            while self._out:
                n = os.write(self.write_fd, self._out)
                del self._out[:n]
        except BlockingIOError:
            pass
        except OSError as e:
            log.warning("console write failed (%s); dropping %d bytes", e, len(self._out))
            self.dropped_bytes += len(self._out)
            self._out.clear()
        if self._out:
            self.loop.add_writer(self.write_fd, self._drain)
        else:
            self.loop.remove_writer(self.write_fd)

    def close(self) -> None:
        self._stop.set()
        if self._reader is None:
            self.loop.remove_reader(self.read_fd)
        if not self._direct_out:
            self.loop.remove_writer(self.write_fd)


NewSession = Callable[..., Session]     # (write, peer_echoes=False) -> a Session (open_console)


class PtyConsole:
    """A pseudo-terminal with a symlink at `link`: the sim board's serial port."""

    def __init__(self, new_session: NewSession, link: str | Path):
        self.link = Path(link)
        if self.link.exists() and not self.link.is_symlink():
            raise ConfigError(f"--console {self.link}: a file is already there; "
                              "give a new path (a symlink to the pty is created)")
        self.master, self._slave = os.openpty()
        # Raw: no echo, no line editing; and we hold the slave open so the master
        # never sees a hang-up when a client closes its end.
        tty.setraw(self._slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self._slave))
        tmp.replace(self.link)
        loop = asyncio.get_running_loop()
        self.session = new_session(self._write)
        self.pipe = FdPipe(loop, self.master, self.master, self.session.feed, self._eof)
        self.task = asyncio.create_task(self.session.serve(), name="console-pty")

    def _write(self, data: bytes) -> None:
        self.pipe.write(data)

    def _eof(self) -> None:
        log.warning("console pty closed")

    def close(self) -> None:
        self.task.cancel()
        self.pipe.close()
        if self.link.is_symlink():
            self.link.unlink()
        os.close(self.master)
        os.close(self._slave)


class StdioConsole:
    """The console on this process's terminal; end of input calls `stop(reason)` (the firmware's)."""

    def __init__(self, new_session: NewSession, stop: Callable[[str], None]):
        loop = asyncio.get_running_loop()
        self._stop = stop
        self.session = new_session(self._write, peer_echoes=os.isatty(0))
        # End of input stops the firmware, once the commands already read have run.
        self.pipe = FdPipe(loop, 0, 1, self.session.feed,
                           lambda: self.session.end_of_input(self._input_ended),
                           room=self.session.has_room)
        self.task = asyncio.create_task(self.session.serve(), name="console-stdio")

    def _write(self, data: bytes) -> None:
        self.pipe.write(data)

    def _input_ended(self) -> None:
        print("glasses: console input ended; stopping (use --console none to run without a "
              "console)", file=sys.stderr, flush=True)
        self._stop("console input ended")

    def close(self) -> None:
        self.task.cancel()
        self.pipe.close()
        for fd in (0, 1):
            if pollable(fd):
                os.set_blocking(fd, True)


class SerialConsole:
    """The console on a UART through pyserial; reopens with back-off if the port vanishes."""

    def __init__(self, new_session: NewSession, port: str, baud: int):
        self.port, self.baud = port, baud
        self.loop = asyncio.get_running_loop()
        self.session = new_session(self._write)
        self.serial = None
        self.pipe = None
        self.task = asyncio.create_task(self.session.serve(), name="console-serial")
        self.keeper = asyncio.create_task(self._keep_open(), name="console-serial-open")
        self._lost = asyncio.Event()

    async def _keep_open(self) -> None:
        import serial
        delay_s = 1.0
        while True:
            try:
                self.serial = serial.Serial(self.port, self.baud, timeout=0, exclusive=True)
            except (serial.SerialException, OSError) as e:
                log.warning("console port %s: %s; retrying in %.0f s", self.port, e, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
                continue
            delay_s = 1.0
            fd = self.serial.fileno()
            self._lost.clear()
            self.pipe = FdPipe(self.loop, fd, fd, self.session.feed, self._lost.set)
            log.info("console on %s at %d baud", self.port, self.baud)
            await self._lost.wait()
            self.pipe.close()
            self.pipe = None
            self.session.disconnected()
            self.serial.close()

    def _write(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.write(data.replace(b"\n", b"\r\n"))

    def close(self) -> None:
        self.task.cancel()
        self.keeper.cancel()
        if self.pipe is not None:
            self.pipe.close()
        if self.serial is not None:
            self.serial.close()


def open_console(fw, spec: str):
    """`--console` value -> a console object, or None. See docs/contracts.md, command line.

    The command table is built here, as the console opens (table.py); the session gets it
    and only the few things of the firmware that are its own.
    """
    cfg = fw.config.console
    if spec == "none" or (spec == "auto" and cfg.tty == "pty"):
        return None
    new_session = functools.partial(Session, build_table(fw), events=fw.events, clock=fw.clock,
                                    version=fw.version, board_name=fw.config.name,
                                    pin_hash=cfg.pin_hash)
    if spec == "stdio":
        return StdioConsole(new_session, fw.stop)
    if spec == "auto":
        return SerialConsole(new_session, cfg.tty, cfg.baud)
    if cfg.tty == "pty":
        return PtyConsole(new_session, spec)
    return SerialConsole(new_session, spec, cfg.baud)

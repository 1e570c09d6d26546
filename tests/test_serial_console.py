"""The console on a real serial port (pyserial), with the cable pulled and re-plugged.

A pty stands in for the USB-serial adapter: the test holds the "cable" end (master),
the firmware opens the device path through pyserial like /dev/ttyUSB0 on a board.
"""

import os
import subprocess
import time

from tests.conftest import GLASSES, ROOT


class Cable:
    """One end of a serial link that can be pulled out and plugged back in."""

    def __init__(self, link):
        self.link = link
        self.plug()

    def plug(self):
        self.master, slave = os.openpty()
        tmp = self.link.with_name("link.new")
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link)
        os.close(slave)
        self.buf = b""

    def pull(self):
        os.close(self.master)

    def command(self, line: bytes, timeout_s=15) -> list[str]:
        os.write(self.master, line + b"\n")
        lines, deadline = [], time.monotonic() + timeout_s
        os.set_blocking(self.master, False)
        while time.monotonic() < deadline:
            try:
                self.buf += os.read(self.master, 4096)
            except (BlockingIOError, OSError):
                time.sleep(0.02)
            while b"\n" in self.buf:
                raw, _, self.buf = self.buf.partition(b"\n")
                text = raw.decode(errors="replace").strip("\r").removeprefix("glasses> ")
                if text:
                    lines.append(text)
                if text == "OK" or text.startswith("ERR "):
                    return lines
        raise AssertionError(f"no reply to {line!r}; got {lines}")


def until_answered(cable, line: bytes, proc, within_s: float) -> list[str]:
    """Ask again until the firmware answers (it may still be starting or reopening)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return cable.command(line, timeout_s=2)
        except AssertionError:
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"no answer to {line!r} within {within_s:g} s"


def test_serial_console_survives_unplug_and_noise(tmp_path):
    link = tmp_path / "ttyUSB0"
    cable = Cable(link)
    board = tmp_path / "serial-sim.toml"
    text = (ROOT / "boards" / "sim.toml").read_text()
    board.write_text(text.replace('tty = "pty"', f'tty = "{link}"'))
    log = open(tmp_path / "out.txt", "w")
    proc = subprocess.Popen(GLASSES + ["run", "--board", str(board), "--data-dir", str(tmp_path / "d"),
                                       "--console", "auto", "--models", "none"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        lines = until_answered(cable, b"version", proc, 30)
        assert lines[-1] == "OK" and lines[-2].startswith("glasses ")
        assert cable.command(b"\x00\x13\xfe noise \x7f")[-1].startswith("ERR ")
        os.write(cable.master, b"half a li")  # pulled mid-line ...
        cable.pull()
        time.sleep(1.5)
        cable.plug()                       # ... and back: the partial line is forgotten
        lines = until_answered(cable, b"status --json", proc, 40)
        assert lines[-1] == "OK" and '"board":"sim"' in lines[-2]
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        log.close()

"""Host side of the serial console: a client, `glasses console` and `glasses diag`.

Runs on the user's computer with a USB-serial cable (or against the sim's pty). The
client frames replies by the protocol alone: lines up to `OK` or `ERR ...`, with `EVT`
lines kept apart, so it works with any firmware that keeps the console protocol of docs/contracts.md.
"""

import json
import os
import sys
import time
from dataclasses import dataclass, field

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.errors import DeviceTimeout, GlassesError

PROMPT = "glasses> "


@dataclass
class Reply:
    lines: list[str]
    error: str | None = None          # the text after "ERR ", or None for OK
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def json(self):
        """The one JSON line of a `--json` reply."""
        for line in self.lines:
            if line.startswith(("{", "[")):
                return json.loads(line)
        raise GlassesError(f"reply has no JSON line: {self.lines[:3]}")


class ConsoleClient:
    """Talks to the firmware console over a serial port (pyserial)."""

    def __init__(self, port: str, baud: int = 115200, timeout_s: float = 30.0):
        import serial
        self.timeout_s = timeout_s
        try:
            self.serial = serial.Serial(port, baud, timeout=0.2)
        except (serial.SerialException, OSError) as e:
            raise GlassesError(f"cannot open {port}: {e}; check the cable and the port name "
                               "(ls /dev/ttyUSB* /dev/ttyACM*)") from None
        self.serial.reset_input_buffer()
        self._buf = b""
        self.command("")  # resynchronise: whatever was half-typed ends, we wait for its OK

    def _readline(self, deadline: float) -> str | None:
        while b"\n" not in self._buf:
            if time.monotonic() > deadline:
                return None
            self._buf += self.serial.read(self.serial.in_waiting or 1)
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def command(self, line: str, timeout_s: float | None = None) -> Reply:
        self.serial.write(line.encode() + b"\n")
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        reply = Reply([])
        while True:
            text = self._readline(deadline)
            if text is None:
                raise DeviceTimeout(f"no reply to '{line[:40]}' within "
                                    f"{timeout_s or self.timeout_s:g} s; is the firmware running?")
            while text.startswith(PROMPT):
                text = text[len(PROMPT):]
            if text.startswith("EVT "):
                reply.events.append(text[4:])
            elif text == "OK":
                return reply
            elif text.startswith("ERR "):
                reply.error = text[4:]
                return reply
            elif text:
                reply.lines.append(text)

    def close(self) -> None:
        self.serial.close()


def interactive(port: str, baud: int = 115200) -> int:
    """`glasses console`: a prompt with history; EOF or `exit` leaves."""
    client = ConsoleClient(port, baud)
    if sys.stdin.isatty():
        import readline
        history = os.path.expanduser("~/.glasses_history")
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    else:
        history = None
    try:
        while True:
            try:
                line = input(PROMPT if sys.stdin.isatty() else "")
            except EOFError:
                break
            if line.strip() in ("exit", "quit"):
                break
            reply = client.command(line)
            for event in reply.events:
                print(f"EVT {event}")
            for text in reply.lines:
                print(text)
            print("OK" if reply.ok else f"ERR {reply.error}", flush=True)
    finally:
        if history:
            readline.write_history_file(history)
        client.close()
    return 0


DIAG_COMMANDS = ("version --json", "status --json", "selftest --json", "sensors --json")


def diag(port: str, baud: int = 115200, as_json: bool = False, out: str | None = None) -> int:
    """Run version, status, selftest and sensors; write a report; exit 1 on a board failure."""
    client = ConsoleClient(port, baud)
    report: dict = {"port": port, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "errors": {}}
    try:
        for cmd in DIAG_COMMANDS:
            name = cmd.split()[0]
            reply = client.command(cmd, timeout_s=60)
            if reply.ok:
                report[name] = reply.json()
            else:
                report["errors"][name] = reply.error
    finally:
        client.close()
    selftest = report.get("selftest", {})
    failed = [d["device"] for d in selftest.get("devices", []) if d["required"] and not d["ok"]]
    report["ok"] = not failed and not report["errors"] and bool(selftest)
    report["failed_devices"] = failed
    text = json.dumps(report, indent=2) if as_json else format_report(report)
    if out:
        write_atomic(out, (text + "\n").encode())
    print(text)
    return 0 if report["ok"] else 1


def format_report(r: dict) -> str:
    lines = [f"glasses diag on {r['port']} at {r['time']}"]
    v, s = r.get("version", {}), r.get("status", {})
    if v:
        lines.append(f"firmware  {v.get('version')} on {v.get('board')}")
    if s:
        b = s.get("battery", {})
        lines.append(f"status    mode {s.get('mode')}, battery {b.get('percent')} %, "
                     f"worn {s.get('worn')}, {s.get('temperature_c')} C, "
                     f"{s.get('storage', {}).get('free_mb')} MB free")
    for d in r.get("selftest", {}).get("devices", []):
        mark = "ok" if d["ok"] else "MISS" if d.get("missing") else ("FAIL" if d["required"] else "warn")
        lines.append(f"  {d['device']:<12} {mark:<4} {d['detail']}")
    for name, why in s.get("missing", {}).items() if s else ():
        lines.append(f"missing   {name}: {why}")
    for name, err in r["errors"].items():
        lines.append(f"error     {name}: {err}")
    lines.append("result    " + ("PASS" if r["ok"] else
                                 f"FAIL ({', '.join(r['failed_devices']) or 'see errors'})"))
    return "\n".join(lines)

"""Drive `glasses run --board sim` from outside, as a user would: one process, its console.

The one harness of the tests, the fault and power-cut campaigns and the benches: start the
firmware with a pty console, send lines, collect `EVT` lines, wait for an event, stop it.
Everything goes through the console protocol (docs/contracts.md); nothing reaches inside.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GLASSES = [sys.executable, "-m", "glasses_firmware.firmware"]
START_S = 60.0          # from exec to the console's pty (imports, the board, the pty)
POLL_S = 0.2


class SimFirmware:
    """A firmware process on a board (the sim, unless told), and a console client to it."""

    def __init__(self, data_dir: Path, tty: Path, log: Path, *, board: str = "sim",
                 models="none", extra=(), glasses=None, wrap=(), cwd=ROOT, env=None,
                 own_group: bool = False, host_port: Path | None = None, connect: bool = True):
        """`tty`: the console the firmware serves (a pty it makes, on the sim), `host_port`
        where the client connects (default: the same path); `models`: a directory or
        "none"; `glasses`: the command that runs the firmware, `wrap` one to run it under
        (`nsenter ... --`); `own_group`: a process group of its own, so `cut` kills it all;
        `connect=False`: no client, for a caller that talks to the pty raw (the fuzzer)."""
        self.data_dir, self.tty = Path(data_dir), Path(tty)
        self.events: list[tuple[float, str]] = []        # (host monotonic s, text)
        if host_port is None:
            self.tty.unlink(missing_ok=True)     # a stale link from a run before
        self.log = open(log, "a+")
        cmd = [*wrap, *(glasses or GLASSES), "run", "--board", board, "--data-dir", str(self.data_dir),
               "--console", str(self.tty), *extra]
        if "--models" not in extra:
            cmd += ["--models", str(models)]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=own_group)
        self.client = None
        self._wait_console(host_port)
        if connect:
            from glasses_firmware.firmware.console.host import ConsoleClient
            self.client = ConsoleClient(str(host_port or self.tty), timeout_s=30)

    def _wait_console(self, host_port: Path | None) -> None:
        deadline = time.monotonic() + START_S
        while not (self.tty.exists() if host_port is None else "console at" in self.output()):
            # (a serial port exists before the firmware opens it: its log line says when)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the firmware did not start: {self.output()[-2000:]}")
            time.sleep(0.05)

    def output(self) -> str:
        if not self.log.closed:     # still readable after stop() has closed it
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    # The console.
    def cmd(self, line: str, timeout_s: float = 30.0):
        reply = self.client.command(line, timeout_s)
        now = time.monotonic()
        self.events += [(now, e) for e in reply.events]
        return reply

    def send(self, line: str) -> None:
        """Type a line and do not wait for the reply."""
        self.client.serial.write(line.encode() + b"\n")

    def events_until(self, predicate, timeout_s: float = 40.0, seen: list | None = None) -> list[str]:
        """Poll the console until an EVT line satisfies `predicate`; every event seen so far
        (pass `seen` back in to go on from there). AssertionError with the last ones if none."""
        seen = [] if seen is None else seen
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen += self.cmd("version").events
            if any(predicate(e) for e in seen):
                return seen
            time.sleep(POLL_S)
        raise AssertionError(f"no matching event in {seen[-30:]}")

    def workers(self) -> dict:
        return self.cmd("status --json").json()["worker"]

    def wait_workers_ready(self, timeout_s: float = 120.0) -> None:
        """Until both inference workers are ready; on a timeout the firmware is killed (a
        failed fixture must not leave it running) and the state said."""
        deadline = time.monotonic() + timeout_s
        while True:
            worker = self.workers()
            if (worker.get("state"), worker.get("voice")) == ("ready", "ready"):
                return
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"workers not ready after {timeout_s:.0f} s: {worker}")
            time.sleep(POLL_S)

    # The end.
    def stop(self, sig=signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Signal it (SIGTERM: a clean stop) and reap it; its exit status."""
        self._close_client()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode
        finally:
            self.log.close()

    def kill(self) -> None:
        """The power cut: SIGKILL (to the whole group with `own_group`), then reap."""
        try:
            if self.proc.poll() is None:
                pgid = os.getpgid(self.proc.pid)
                if pgid == self.proc.pid:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._close_client()
        self.log.close()

    def _close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

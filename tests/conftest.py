"""Shared fixtures: a running `glasses run --board sim` with its console on a pty."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLASSES = [sys.executable, "-m", "glasses_firmware.firmware"]


class RunningFirmware:
    """A firmware process on the sim board, and a console client to it."""

    def __init__(self, tmp: Path, board: str = "sim", extra=(), glasses=None, cwd=ROOT, env=None,
                 console: Path | None = None, host_port: Path | None = None):
        """`console`: the tty the firmware serves (default: a pty it makes, tmp/glasses.tty);
        `host_port`: where the client connects (default: the same path)."""
        # Without --models the firmware loads the installed real models: a test that does
        # not use them says so, and starts in a second instead of loading half a gigabyte.
        if "--models" not in extra:
            extra = (*extra, "--models", "none")
        self.data_dir = tmp / "data"
        self.tty = console or tmp / "glasses.tty"
        self.log = open(tmp / "stdout.txt", "w+")
        self.proc = subprocess.Popen(
            (glasses or GLASSES) + ["run", "--board", board, "--data-dir", str(self.data_dir),
                                    "--console", str(self.tty), *extra],
            cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        def up() -> bool:
            if host_port is None:
                return self.tty.exists()
            self.log.seek(0)        # a serial port exists before the firmware opens it
            return "console at" in self.log.read()
        while not up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"firmware did not start: {self.log.read()[-2000:]}")
            time.sleep(0.05)
        from glasses_firmware.firmware.console.host import ConsoleClient
        self.client = ConsoleClient(str(host_port or self.tty), timeout_s=30)

    def cmd(self, line: str, timeout_s: float = 30):
        return self.client.command(line, timeout_s)

    def stop(self, sig=signal.SIGTERM) -> int:
        self.client.close()
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()

    def events_until(self, predicate, timeout_s: float = 40.0, seen: list | None = None) -> list[str]:
        """Poll the console until an EVT line satisfies `predicate`; every event seen so far
        (pass `seen` back in to go on from there)."""
        seen = [] if seen is None else seen
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            seen += self.cmd("version").events
            if any(predicate(e) for e in seen):
                return seen
            time.sleep(0.2)
        raise AssertionError(f"no matching event in {seen[-30:]}")

    def wait_workers_ready(self, timeout_s: float = 120.0) -> None:
        """Poll `status --json` until both inference workers are ready; on a timeout the
        firmware is stopped (a failed fixture must not leave it running) and the state said."""
        deadline = time.monotonic() + timeout_s
        while True:
            worker = self.cmd("status --json").json()["worker"]
            if (worker.get("state"), worker.get("voice")) == ("ready", "ready"):
                return
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"workers not ready after {timeout_s:.0f} s: {worker}")
            time.sleep(0.5)

    def output(self) -> str:
        return Path(self.log.name).read_text()


@pytest.fixture
def firmware(tmp_path):
    fw = RunningFirmware(tmp_path)
    yield fw
    if fw.proc.poll() is None:
        fw.stop()


@pytest.fixture(scope="module")
def shared_firmware(tmp_path_factory):
    """One firmware for a module's read-mostly tests (tests restore what they change)."""
    fw = RunningFirmware(tmp_path_factory.mktemp("fw"))
    yield fw
    if fw.proc.poll() is None:
        fw.stop()


def pytest_configure(config):
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


@pytest.fixture(scope="session")
def test_models():
    """The offline test models (built once by the project's own script, then reused)."""
    from glasses_firmware.models import build_test
    build_test.build(build_test.DEFAULT_OUT, log=lambda *a: None)
    return build_test.DEFAULT_OUT

"""Shared fixtures: a running `glasses run --board sim` with its console on a pty."""

import os
import signal
import time
from pathlib import Path

import pytest

from glasses_firmware.firmware.tools.simdriver import GLASSES, ROOT, SimFirmware  # noqa: F401 (tests use conftest.GLASSES, ROOT)



def wait_for(check, what: str, timeout_s: float = 10.0, every_s: float = 0.1):
    """Poll `check` until it returns something true, and return that; AssertionError naming
    `what` after `timeout_s`. For state the console or the disk shows, not for a duration."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class RunningFirmware(SimFirmware):
    """A firmware process on the sim board in `tmp` (data/, glasses.tty, stdout.txt)."""

    def __init__(self, tmp: Path, board: str = "sim", extra=(), glasses=None, cwd=ROOT, env=None,
                 console: Path | None = None, host_port: Path | None = None):
        """`console`: the tty the firmware serves (default: a pty it makes, tmp/glasses.tty);
        `host_port`: where the client connects (default: the same path). Without --models in
        `extra` it runs with none: a test that needs them says so, and starts in a second."""
        super().__init__(tmp / "data", console or tmp / "glasses.tty", tmp / "stdout.txt",
                         board=board, extra=extra, glasses=glasses, cwd=cwd, env=env,
                         host_port=host_port)

    def stop(self, sig=signal.SIGTERM) -> int:
        return super().stop(sig, timeout_s=15)


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

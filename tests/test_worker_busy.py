"""A worker silent in a long native call is busy, not hung (it burns CPU); a stopped one is
hung. The supervisor tells them apart by the process's CPU time (firmware/worker/supervisor.py)."""

import os
import signal
import subprocess
import sys
import time

from glasses_firmware.firmware.worker.supervisor import cpu_seconds


def test_cpu_time_grows_while_computing_and_is_zero_while_stopped():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        first = cpu_seconds(child.pid)
        time.sleep(0.5)
        assert cpu_seconds(child.pid) > first > 0
        os.kill(child.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while cpu_seconds(child.pid) != 0.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu_seconds(child.pid) == 0.0
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds(child.pid) is None          # gone

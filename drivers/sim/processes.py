"""The sim's helper processes (its D-Bus daemon, the BlueZ and oFono mocks): started so that
they die with the firmware, and stopped with a deadline."""

import contextlib
import ctypes
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the firmware dies, even by SIGKILL (the fault
    campaigns), so no bus or mock outlives it. Linux's prctl PR_SET_PDEATHSIG; elsewhere nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(proc: subprocess.Popen | None, timeout_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL past `timeout_s`; waits for the process either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)

"""The offline promise, checked on the system calls (docs/privacy.md, "What leaves the glasses").

tests/test_offline.py runs the firmware where there is no network; a lookup there fails
quietly and the test passes. Here the firmware runs with the machine's network under
`strace -f` (every thread, every worker, every program it starts), and every connect or
send to an INET/INET6 address is read back. With no offload server set there must be none
at all, DNS included; with one set, only that server on its port.

onnxruntime and onnxruntime-genai resolve Microsoft's telemetry host seconds after their
first session unless ORT_DISABLE_TELEMETRY is set; `glasses_firmware` sets it on import.
The first test shows the tracer sees a lookup that fails in a network namespace; the
second, that a session there makes none once our package is imported, and, where the
library called directly looks up (not every machine: some keep it quiet by themselves),
that our import is what stops it.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import conftest, syscalls
from tests.conftest import RunningFirmware
from tests.offload_servers import SilentServer
from tests.test_offline import _unshare_prefix

pytestmark = pytest.mark.skipif(syscalls.strace() is None,
                                reason="strace is not installed (scripts/setup.sh installs it)")

SESSION_S = 120         # the two minutes: lookups on a timer show up within it

SESSION_SCRIPT = """
import os, sys, time
if sys.argv[1] == "ours":
    import glasses_firmware  # noqa: F401
import onnxruntime
onnxruntime.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and not os.path.exists("stop"):
    time.sleep(0.2)
"""
CONTROL_S = 120         # how long the plain library gets to make its first lookup


def dns(found):
    return [d for d in found if d.port == 53]


LOOKUP_SCRIPT = """
import socket
try:
    socket.getaddrinfo("mobile.events.data.microsoft.com", 443)
except OSError:
    pass                 # no network in the namespace: the call was made, which is what counts
"""


def test_the_tracer_sees_a_lookup_that_fails_where_there_is_no_network(tmp_path):
    """The control for every test here: a lookup in a network namespace is in the trace."""
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("neither `unshare -n` nor `unshare -rn` works here")
    log = tmp_path / "lookup.strace"
    done = subprocess.run(prefix + syscalls.traced([sys.executable, "-c", LOOKUP_SCRIPT], log),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert dns(syscalls.destinations(log)), log.read_text()


def test_our_import_stops_onnxruntime_telemetry(tmp_path, test_models):
    """The library called directly beside the same call after `import glasses_firmware`.

    Ours must make no lookup whatever the library does. Where the plain library looks up
    (every user machine we have tried), the comparison shows our switch is what stops it;
    where it keeps quiet by itself the comparison proves nothing and is skipped, saying so.
    """
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("neither `unshare -n` nor `unshare -rn` works here; the plain library "
                    "would send its lookups to the real network")
    model = next(Path(test_models).rglob("*.onnx"))
    env = {k: v for k, v in syscalls.as_on_a_user_machine(os.environ).items()
           if k != "ORT_DISABLE_TELEMETRY"}
    env["PYTHONPATH"] = str(conftest.ROOT)
    runs = {}
    for who in ("plain", "ours"):
        log, home = tmp_path / f"{who}.strace", tmp_path / who
        home.mkdir()                      # the library's event store lands in HOME, if anywhere
        cmd = prefix + syscalls.traced([sys.executable, "-c", SESSION_SCRIPT, who, str(model),
                                        str(CONTROL_S)], log)
        runs[who] = (log, subprocess.Popen(cmd, env={**env, "HOME": str(home)}, cwd=home))
    # Both run side by side until the plain one has looked up, then a while more for ours.
    plain_log, plain = runs["plain"]
    while plain.poll() is None and not (plain_log.exists() and dns(syscalls.destinations(plain_log))):
        time.sleep(0.5)
    time.sleep(5)
    for who, (log, proc) in runs.items():
        (tmp_path / who / "stop").touch()
        assert proc.wait(timeout=60) == 0, who
    found = {w: syscalls.destinations(runs[w][0]) for w in runs}
    store = {w: (tmp_path / w / ".cache" / "Microsoft").exists() for w in runs}
    assert found["ours"] == [], [str(d) for d in found["ours"]]
    assert not store["ours"]
    if not dns(found["plain"]):
        pytest.skip(f"onnxruntime called directly made no lookup in {CONTROL_S} s and kept no "
                    f"event store (made: {store['plain']}): its telemetry did not start on this "
                    "machine, so there is nothing for our switch to stop (ours made none)")
    assert store["plain"]


class TracedFirmware(RunningFirmware):
    """The sim firmware under strace; `stop` signals the firmware, not the tracer."""

    def __init__(self, tmp: Path, extra=()):
        self.trace = tmp / "firmware.strace"
        super().__init__(tmp, extra=extra, glasses=syscalls.traced(conftest.GLASSES, self.trace),
                         env=syscalls.as_on_a_user_machine(os.environ))

    def stop(self, sig=signal.SIGTERM) -> int:
        children = [int(c) for t in Path(f"/proc/{self.proc.pid}/task").glob("*/children")
                    for c in t.read_text().split()]
        self.client.close()
        for pid in children:
            os.kill(pid, sig)
        try:
            return self.proc.wait(timeout=30)      # strace exits with the firmware's status
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()


def mixed_session(fw) -> None:
    """A bit of everything the glasses do, then idle until SESSION_S have passed."""
    started = time.monotonic()
    fw.wait_workers_ready()
    assert fw.cmd("events on").ok
    assert fw.cmd("sim phone").ok
    reply = fw.cmd("ask what is the capital of France?", timeout_s=120)
    assert reply.ok and reply.lines, reply      # the test models' words; the call is what counts
    assert fw.cmd("sim say hey jarvis").ok
    events = fw.events_until(lambda e: e.startswith("assistant listening (wake word)"), 60)
    assert fw.cmd("sim say take a photo").ok
    # What the test models make of it does not matter here, only that the turn ran to its
    # end ("Photo taken." or an apology) before the console asks for the camera.
    heard = len(events)
    events = fw.events_until(lambda e: e.startswith("assistant heard"), 60, seen=events)
    fw.events_until(lambda e: any(x.startswith("speak ") for x in events[heard:]), 60, seen=events)
    assert fw.cmd("capture photo", timeout_s=60).ok
    assert fw.cmd("read", timeout_s=120).ok
    assert fw.cmd("record start").ok
    assert fw.cmd("sim say we agreed to paint the meeting room blue").ok
    time.sleep(3)
    assert fw.cmd("record stop").ok
    assert fw.cmd("translate on en zh").ok
    assert fw.cmd("sim say where is the station").ok
    fw.events_until(lambda e: e.startswith("translate "), 90, seen=events)
    assert fw.cmd("translate off").ok
    assert fw.cmd("sim phone notify Signal the train is late").ok
    fw.events_until(lambda e: e.startswith("speak Signal: the train is late"), 60, seen=events)
    while time.monotonic() - started < SESSION_S:
        assert fw.cmd("status").ok
        time.sleep(5)


@pytest.mark.slow
def test_no_lookup_and_no_packet_in_a_mixed_session_with_no_offload(tmp_path, test_models):
    fw = TracedFirmware(tmp_path, extra=("--models", str(test_models)))
    try:
        mixed_session(fw)
    finally:
        assert fw.stop() == 0
    programs = syscalls.programs(fw.trace)
    print("\n".join(programs))
    assert sum("glasses_firmware" in p or "multiprocessing" in p for p in programs) >= 3, \
        "the trace did not follow the model workers"
    found = syscalls.destinations(fw.trace)
    assert found == [], [str(d) for d in found]
    assert syscalls.inet_sockets(fw.trace) == []


def test_with_an_offload_server_only_that_server_is_reached(tmp_path, test_models):
    server = SilentServer()          # accepts and never answers: the glasses fall back
    fw = TracedFirmware(tmp_path, extra=("--models", str(test_models)))
    try:
        fw.wait_workers_ready()
        url = f"http://127.0.0.1:{server.port}/v1"
        assert fw.cmd(f"offload set llm openai {url} --deadline 1").ok
        reply = fw.cmd("ask what is the capital of France?", timeout_s=120)
        assert reply.ok and reply.lines, reply
    finally:
        assert fw.stop() == 0
        server.close()
    found = syscalls.destinations(fw.trace)
    assert found, "the firmware never tried the offload server"
    assert {(d.address, d.port) for d in found} == {("127.0.0.1", server.port)}, \
        [str(d) for d in found]

"""Start, watch and restart the inference worker process; route its messages.

States and their transitions are the table below; every change goes through
`WorkerMachine.fire` (statetable's move: checked against the table, logged with the
reason). A worker that exits, or stops sending heartbeats for `heartbeat_timeout_s` (hung,
or SIGSTOPped), is killed; its in-flight requests fail with `WorkerCrashed` naming the
reason, and it is restarted after a back-off. `crash_loop_count` failures within
`crash_loop_window_s` end in `degraded`: no more restarts until `start()` is called again.
A worker that stayed ready for `stable_s` before it failed was not crash-looping: its
failure starts the count afresh, so a worker killed now and then (the OOM killer, a fault
campaign) always comes back, while one that dies while starting, or right after, is given
up on.

Heartbeats and deadlines use the host's real monotonic clock, because the worker runs in
real time even when the firmware's clock is simulated; the injected clock paces back-off.
"""

import asyncio
import logging
import os
import multiprocessing as mp
import signal
import time
from dataclasses import dataclass

from glasses_firmware.drivers.clock import Clock

from .. import statetable
from ..statetable import Machine
from . import protocol as P
from .errors import WorkerCrashed, WorkerDegraded, WorkerUnavailable, from_worker
from .process import worker_main

log = logging.getLogger("glasses.worker")

STATES = ("not_started", "starting", "ready", "restarting", "degraded", "stopped")
INITIAL = "not_started"
TRANSITIONS = {
    ("not_started", "start"): "starting",
    ("degraded", "start"): "starting",
    ("stopped", "start"): "starting",
    ("starting", "up"): "ready",
    ("restarting", "up"): "ready",
    ("starting", "fail"): "restarting",
    ("ready", "fail"): "restarting",
    ("restarting", "fail"): "restarting",
    ("starting", "give_up"): "degraded",
    ("ready", "give_up"): "degraded",
    ("restarting", "give_up"): "degraded",
    **{(s, "stop"): "stopped" for s in STATES},
}


def diagram() -> str:
    """The state machine as Mermaid text, generated from the table."""
    return statetable.mermaid(TRANSITIONS, INITIAL)


class WorkerMachine(Machine):
    """The worker's state; `fire(event, reason)` is the only way it changes."""

    def __init__(self):
        super().__init__(TRANSITIONS, INITIAL, log, "worker",
                         tell_self_loops=True)   # another failure while restarting: a new reason


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"T", b"t", b"Z"):        # stopped, traced or dead: not computing
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SupervisorSettings:
    heartbeat_interval_s: float = 0.5
    heartbeat_timeout_s: float = 10.0   # long native calls (a 1000-token prefill) hold the GIL
    # ...so a silent worker that is burning CPU is busy, not hung: it gets this long before it
    # counts as hung (a slow or emulated CPU, a long prompt); a stopped or blocked one does not.
    busy_timeout_s: float = 120.0
    start_timeout_s: float = 120.0      # loading the LLM at preload
    backoff_s: tuple[float, ...] = (0.5, 2.0, 8.0)
    crash_loop_count: int = 3
    crash_loop_window_s: float = 120.0
    stable_s: float = 5.0               # ready this long before a failure: not a crash loop
    stop_timeout_s: float = 5.0


class Supervisor:
    """Owns one worker process at a time; `on_message(msg)` gets every routed message."""

    def __init__(self, models_dir, threads: int, settings: SupervisorSettings, on_message,
                 on_failure, clock=None, preload=(), options=None):
        self.models_dir = None if models_dir is None else str(models_dir)
        self.threads = threads
        self.settings = settings
        self.on_message = on_message
        self.on_failure = on_failure      # called with the reason; fails in-flight requests
        self.clock = clock or Clock()
        self.preload = tuple(preload)
        self.options = dict(options or {})   # per-role settings for the worker (JSON-able)
        self.reason = ""
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.machine = WorkerMachine()
        self.machine.subscribe(self._moved)
        self.proc = None
        self.conn = None
        self.last_hb = 0.0
        self.started_at = 0.0
        self.ready_at: float | None = None   # host monotonic s when it last became ready
        self.failures: list[float] = []
        self.restarts = 0
        self.startup_error = ""
        self._watch = None
        self._restart = None
        self._ctx = mp.get_context("spawn")

    @property
    def state(self) -> str:
        """One of STATES."""
        return self.machine.state

    def _moved(self, old: str, new: str, event: str, reason: str) -> None:
        if new == "ready" and old != "ready":
            self.ready_at = time.monotonic()
        self.reason = reason
        (self.ready.set if new == "ready" else self.ready.clear)()
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.machine.fire("start", "asked to start")
        self.failures.clear()
        self._spawn()
        if self._watch is None:
            self._watch = asyncio.get_running_loop().create_task(self._watchdog(), name="worker-watch")

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=worker_main, name="glasses-inference", daemon=True,
                                 args=(child, self.models_dir, self.threads,
                                       self.settings.heartbeat_interval_s, self.preload,
                                       self.options))
        proc.start()
        child.close()  # only the worker holds its end, so its death reads as EOF here
        self.proc, self.conn = proc, parent
        self.started_at = self.last_hb = time.monotonic()
        self.startup_error = ""
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)

    def send(self, msg) -> None:
        if self.conn is None or self.state not in ("ready", "starting", "restarting"):
            raise WorkerUnavailable(f"the inference worker is {self.state}")
        try:
            self.conn.send_bytes(P.encode(msg))
        except (OSError, ValueError) as e:
            raise WorkerUnavailable(f"cannot reach the inference worker: {e}") from None

    def _readable(self) -> None:
        conn = self.conn
        try:
            while conn is self.conn and conn.poll():
                msg = P.decode(conn.recv_bytes())
                self._route(msg)
        except (EOFError, OSError):
            if conn is self.conn:
                self._failed(self._exit_reason())
        except P.ProtocolError as e:
            self._failed(f"sent a malformed message ({e})")

    def _route(self, msg: dict) -> None:
        op = msg["op"]
        self.last_hb = time.monotonic()
        if op == "ready":
            self.machine.fire("up", f"worker pid {msg.get('pid')} is ready")
        elif op == "error" and msg.get("id") == 0:
            self.startup_error = msg.get("message", "")
            log.error("worker failed to start: %s", self.startup_error)
        elif op != "hb":
            self.on_message(msg)

    def _exit_reason(self) -> str:
        proc = self.proc
        proc.join(timeout=1.0)
        code = proc.exitcode
        if code is None:
            return "closed its pipe"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        detail = f": {self.startup_error}" if self.startup_error else ""
        return f"exited with code {code}{detail}"

    def _failed(self, reason: str) -> None:
        if self.state not in ("starting", "ready", "restarting") or self.proc is None:
            return
        self._reap()
        self.on_failure(reason)
        now = time.monotonic()
        if self.state == "ready" and now - self.ready_at >= self.settings.stable_s:
            self.failures.clear()
        self.failures = [t for t in self.failures if now - t < self.settings.crash_loop_window_s]
        self.failures.append(now)
        if len(self.failures) >= self.settings.crash_loop_count:
            window_s = self.settings.crash_loop_window_s
            self.machine.fire("give_up", f"worker {reason}; {len(self.failures)} failures within "
                                         f"{window_s:.0f} s: not restarting")
            return
        delay = self.settings.backoff_s[min(len(self.failures), len(self.settings.backoff_s)) - 1]
        self.machine.fire("fail", f"worker {reason}; restarting in {delay:.1f} s")
        self._restart = asyncio.get_running_loop().create_task(self._restart_after(delay))

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        if self.conn is not None:
            loop.remove_reader(self.conn.fileno())
            self.conn.close()
        if self.proc is not None and self.proc.exitcode is None:
            self.proc.kill()  # SIGKILL also ends a SIGSTOPped process
            self.proc.join(timeout=2.0)
            if self.proc.exitcode is None:
                log.error("worker pid %s survived SIGKILL for 2 s; abandoning it", self.proc.pid)
        self.conn = self.proc = None

    async def _restart_after(self, delay: float) -> None:
        await self.clock.asleep(delay)
        if self.state == "restarting":
            self.restarts += 1
            self._spawn()

    async def _watchdog(self) -> None:
        s = self.settings
        tick = min(s.heartbeat_interval_s, s.heartbeat_timeout_s / 4)
        cpu_before = None
        while self.state != "stopped":
            await asyncio.sleep(tick)
            if self.proc is None:
                cpu_before = None
                continue
            silent = time.monotonic() - self.last_hb
            cpu = cpu_seconds(self.proc.pid)
            busy = cpu is not None and cpu_before is not None and cpu - cpu_before > 0.2 * tick
            cpu_before = cpu
            if self.state == "ready" and silent > s.heartbeat_timeout_s:
                if busy and silent <= s.busy_timeout_s:
                    continue      # computing in a native call that holds the GIL
                how = "computing without a heartbeat" if busy else "hung or stopped"
                self._failed(f"sent no heartbeat for {silent:.1f} s ({how})")
            elif self.state in ("starting", "restarting") and silent > s.start_timeout_s:
                self._failed(f"did not become ready within {s.start_timeout_s:.0f} s")

    async def stop(self) -> None:
        if self.state == "stopped":
            return
        if self.conn is not None and self.state == "ready":
            try:
                self.conn.send_bytes(P.encode({"op": "stop"}))
            except (OSError, ValueError):
                pass  # already gone: the kill below is enough
        self.machine.fire("stop", "asked to stop")
        if self._restart is not None:
            self._restart.cancel()
        proc = self.proc
        if proc is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, proc.join, self.settings.stop_timeout_s)
        self._reap()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        self.on_failure("was stopped")

    def unavailable_error(self) -> Exception:
        if self.state == "degraded":
            return WorkerDegraded(f"inference is off: the worker is degraded ({self.reason}); "
                                  "`start()` it again after fixing the cause")
        return WorkerUnavailable(f"the inference worker is {self.state}"
                                 + (f" ({self.reason})" if self.reason else ""))


__all__ = ["Supervisor", "SupervisorSettings", "STATES", "TRANSITIONS", "diagram",
           "WorkerCrashed", "from_worker"]

"""The inference worker process: owns the model sessions, serves requests from a pipe.

Threads: the main thread reads the pipe (requests go to a priority queue, cancels set a
flag at once); one compute thread runs requests one at a time, highest priority first,
checking its cancel flag and deadline between tokens; a second, "light" compute thread
runs the streaming audio roles (VAD, wake word: about a millisecond per call), so an 80 ms
wake-word chunk is not stuck behind a long LLM answer; a heartbeat thread says "alive"
every `heartbeat_s`. If the whole process is stopped (SIGSTOP) or stuck in native code
with the GIL held, the heartbeats stop and the supervisor restarts it.
"""

import heapq
import itertools
import logging
import os
import threading
import time
import traceback

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.waits import joined

from . import protocol as P
from .roles import Roles

log = logging.getLogger("glasses.worker")


LANES = ("main", "light")
LIGHT_KINDS = ("vad", "wake")


def _lane(kind: str) -> str:
    return "light" if kind in LIGHT_KINDS else "main"


class _Job:
    def __init__(self, req: P.Request):
        self.req = req
        self.cancelled = threading.Event()


class Worker:
    def __init__(self, conn, models_dir, threads: int, heartbeat_s: float, options=None):
        self.conn = conn
        self.heartbeat_s = heartbeat_s
        self.roles = Roles(models_dir, threads, options)
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.queues: dict[str, list] = {lane: [] for lane in LANES}
        self.jobs: dict[int, _Job] = {}
        self.seq = itertools.count()
        self.stopping = threading.Event()

    def send(self, msg: dict) -> None:
        data = P.encode(msg)
        with self.send_lock:
            self.conn.send_bytes(data)

    def run(self, preload) -> None:
        hb = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        hb.start()
        for role in preload:
            self.roles.get(role)
        computes = [threading.Thread(target=self._compute, args=(lane,), name=f"compute-{lane}",
                                     daemon=True) for lane in LANES]
        for compute in computes:
            compute.start()
        self.send({"op": "ready", "pid": os.getpid(), "protocol": P.PROTOCOL_VERSION})
        try:
            while not self.stopping.is_set():
                try:
                    msg = P.decode(self.conn.recv_bytes())
                except (EOFError, OSError):
                    break  # the firmware went away: nothing left to serve
                self._dispatch(msg)
        finally:
            self.stopping.set()
            with self.cond:
                self.cond.notify_all()
            for compute in computes:
                joined(compute, 5.0)

    def _dispatch(self, msg: dict) -> None:
        if msg["op"] == "stop":
            self.stopping.set()
        elif msg["op"] == "cancel":
            with self.cond:
                job = self.jobs.get(int(msg["id"]))
                if job is None:
                    return  # already finished: its terminal message is on its way
                job.cancelled.set()
                queue = self.queues[_lane(job.req.kind)]
                queued = any(j is job for _, _, j in queue)
                if queued:
                    queue[:] = [e for e in queue if e[2] is not job]
                    heapq.heapify(queue)
                    del self.jobs[job.req.id]
            if queued:
                self.send({"op": "cancelled", "id": job.req.id})
        elif msg["op"] == "request":
            req = msg["request"]
            job = _Job(req)
            with self.cond:
                self.jobs[req.id] = job
                heapq.heappush(self.queues[_lane(req.kind)], (req.priority, next(self.seq), job))
                self.cond.notify_all()  # two lanes wait on it: wake the right one

    def _heartbeat(self) -> None:
        while not self.stopping.wait(self.heartbeat_s):
            try:
                self.send({"op": "hb", "t": time.monotonic()})
            except (OSError, ValueError):
                return

    def _compute(self, lane: str) -> None:
        queue = self.queues[lane]
        while True:
            with self.cond:
                while not queue and not self.stopping.is_set():
                    # Bounded: a stop set without a notify (the "stop" message) is still
                    # seen within a heartbeat.
                    self.cond.wait(self.heartbeat_s)
                if self.stopping.is_set():
                    return
                _, _, job = heapq.heappop(queue)
            try:
                self._run(job)
            except (OSError, ValueError):
                return  # the pipe is closed: the firmware is gone or stopping us
            finally:
                with self.cond:
                    self.jobs.pop(job.req.id, None)

    def _run(self, job: _Job) -> None:
        req = job.req
        stop = lambda: job.cancelled.is_set() or time.monotonic() > req.deadline_s  # noqa: E731
        try:
            if time.monotonic() > req.deadline_s:
                raise _Deadline()
            result = None
            for kind, value in self.roles.serve(req, stop):
                if kind == "item":
                    self.send({"op": "item", "id": req.id, "value": value})
                else:
                    result = value
            if job.cancelled.is_set():
                self.send({"op": "cancelled", "id": req.id})
            elif time.monotonic() > req.deadline_s:
                raise _Deadline()
            else:
                self.send({"op": "done", "id": req.id, "value": result})
        except _Deadline:
            self.send({"op": "error", "id": req.id, "kind": "DeadlineExceeded",
                       "message": f"request {req.id} ({req.kind}) passed its deadline in the worker"})
        except GlassesError as e:
            self.send({"op": "error", "id": req.id, "kind": type(e).__name__, "message": str(e)})
        except Exception as e:  # a bug in a role must not kill the worker: report it, go on
            log.error("request %s failed:\n%s", req.id, traceback.format_exc())
            self.send({"op": "error", "id": req.id, "kind": "WorkerBug",
                       "message": f"{req.kind} failed in the worker: {type(e).__name__}: {e}"})


class _Deadline(Exception):
    pass


def worker_main(conn, models_dir, threads: int, heartbeat_s: float, preload=(),
                options=None) -> None:
    """Entry point of the spawned process; `options` are per-role settings (see Roles)."""
    logging.basicConfig(level=logging.WARNING, format="worker %(levelname)s %(message)s")
    worker = Worker(conn, models_dir, threads, heartbeat_s, options)
    try:
        worker.run(preload)
    except GlassesError as e:
        # A preload failure (missing model): say why before exiting, so it is not a mystery.
        try:
            worker.send({"op": "error", "id": 0, "kind": type(e).__name__, "message": str(e)})
        except OSError:
            pass
        raise SystemExit(3)

"""The worker fault campaign (`glasses soak`): SIGKILL the inference workers under load.

    result = run_kills(models_dir, kills=100, seconds=900, seed=1)
    print(summary(result))

Runs the whole firmware on the sim board (a subprocess with its console on a pty, talked
to through the host-side ConsoleClient, as a user would), drives a random mix of typed
questions, device commands, voice turns, translation turns, meetings and `read`, and
SIGKILLs one of the two workers at a random moment of each request. It measures, as the
console shows them: every request's outcome (answered, a clear `ERR`, or the assistant's
spoken apology) and the time from the kill to it; the time until the killed worker is
`ready` again; then a SIGSTOPped worker caught by the heartbeat, and a crash loop (a
worker killed as fast as it is started) ending `degraded` in `status`.

`result["failures"]` lists every broken promise (empty when the campaign passed). The run
stops at `seconds` even with kills left, and says so in `result["stopped"]`.
"""

import os
import random
import re
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.errors import DeviceTimeout
from glasses_firmware.firmware.tools.simdriver import SimFirmware

ANSWER_LIMIT_S = 2.0        # a request in flight at a kill is answered within this
BACK_LIMIT_S = 60.0         # a killed worker is ready again within this (the LLM loads)
MEETING_LIMIT_S = 60.0      # a meeting's notes are done within this of `record stop`
STABLE_S = 6.0              # a worker ready this long is not crash-looping (supervisor: 5 s)
RESERVE_S = 45.0            # of `seconds`, kept for the SIGSTOP and crash-loop phases
POLL_S = 0.1

QUESTIONS = ("what is the capital of France", "tell me a short story about a cat",
             "how far away is the moon", "why is the sky blue")
COMMANDS = ("what's the battery", "what time is it")
SPEECH = ("what is the weather like today", "tell me something about elephants")
PHRASES = ("good morning my friend", "where is the train station")
MEETING = ("we decided to ship the release on friday and anna will write the notes",)

# Events that end a voice or translation turn, and what they mean.
TURN_ENDS = (("assistant answered", "answered"), ("assistant command", "answered"),
             ("caption en->", "answered"), ("caption zh->", "answered"),
             ("speak Sorry", "apology"), ("translate recognition failed", "apology"),
             ("translate heard", "apology"), ("assistant failed", "apology"),
             ("assistant no answer", "apology"), ("assistant heard nothing", "apology"),
             ("assistant not recognized", "apology"))


@dataclass
class Request:
    kind: str
    victim: str
    sent_at: float
    due_at: float                     # when an answer could first be expected (speech ended)
    kill_at: float | None = None      # when the victim was killed (None: it was not, yet)
    outcome: str = "lost"             # answered | error | apology | lost
    done_at: float | None = None
    detail: str = ""

    @property
    def in_flight_at_kill(self) -> bool:
        return self.kill_at is not None and (self.done_at is None or self.kill_at < self.done_at)

    @property
    def kill_to_outcome_s(self) -> float | None:
        if not self.in_flight_at_kill or self.done_at is None:
            return None
        return self.done_at - max(self.kill_at, self.due_at)


class SoakedFirmware(SimFirmware):
    """The firmware under the campaign: its workers' pids and readiness, its events' times."""

    def __init__(self, models_dir: Path, tmp: Path, timeout_s: float = 120.0):
        super().__init__(tmp / "data", tmp / "glasses.tty", tmp / "firmware.log", models=models_dir)
        self.cmd("events on")
        if self.wait_ready(("model", "voice"), timeout_s) is None:
            self.kill()
            raise RuntimeError(f"the workers were not ready in {timeout_s:.0f} s; see {self.log.name}")

    def status(self) -> dict:
        """{worker: (state, pid, host monotonic s it became ready or None)}."""
        w = self.workers()
        now = time.monotonic()
        return {name: (w[state], w[pid], None if w[up] is None else now - w[up])
                for name, state, pid, up in (("model", "state", "pid", "up_s"),
                                             ("voice", "voice", "voice_pid", "voice_up_s"))}

    def wait_ready(self, names, timeout_s: float, not_pid: int | None = None) -> float | None:
        """Host time when the last of `names` became ready (with a pid other than `not_pid`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = self.status()
            if all(s[n][0] == "ready" and s[n][1] not in (None, not_pid) for n in names):
                return max(s[n][2] for n in names)
            time.sleep(POLL_S)
        return None

    def wait_event(self, since: int, outcome_of, deadline: float):
        """(host time, outcome, text) of the first event after index `since` that
        `outcome_of(text)` names an outcome for; None past `deadline`."""
        while True:
            for t, text in self.events[since:]:
                outcome = outcome_of(text)
                if outcome is not None:
                    return t, outcome, text
            if time.monotonic() > deadline:
                return None
            time.sleep(POLL_S)
            self.cmd("version")


class Killer:
    """SIGKILLs one pid after a delay, from a timer thread (the console call blocks)."""

    def __init__(self, pid: int, delay_s: float):
        self.pid, self.at = pid, None
        self._timer = threading.Timer(delay_s, self._kill)
        self._timer.start()

    def _kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            self.at = time.monotonic()
        except ProcessLookupError:
            pass      # already replaced: no kill this time

    def join(self) -> float | None:
        self._timer.join(timeout=10)
        return self.at


def _episode(fw: SoakedFirmware, rng: random.Random, kind: str, pid: int, victim: str) -> Request:
    """One request of `kind` with the victim killed at a random moment of it."""
    t0 = time.monotonic()
    if kind in ("ask", "command", "read"):
        line = {"ask": f"ask {rng.choice(QUESTIONS)}", "command": f"ask {rng.choice(COMMANDS)}",
                "read": "read"}[kind]
        killer = Killer(pid, rng.uniform(0.0, 3.0 if kind == "read" else 0.4))
        req = Request(kind, victim, t0, t0)
        try:
            reply = fw.cmd(line, timeout_s=60)
        except DeviceTimeout as e:
            req.detail = str(e)
            req.kill_at = killer.join()
            return req
        req.done_at = time.monotonic()
        text = " ".join(reply.lines)
        req.outcome = ("error" if not reply.ok else
                       "apology" if text.startswith(("Sorry", "the language model")) else "answered")
        req.detail = reply.error or text[:120]
        req.kill_at = killer.join()
        return req
    if kind in ("voice", "translate"):
        if kind == "voice":
            fw.cmd("sim button action click")
            text = rng.choice(SPEECH)
        else:
            fw.cmd("translate on en zh")
            text = rng.choice(PHRASES)
        since = len(fw.events)
        said = fw.cmd(f"sim say {text}")
        speech_s = float(said.lines[0].split(", ")[1].split(" s)")[0]) if said.ok else 0.0
        killer = Killer(pid, rng.uniform(0.0, speech_s + 1.5))
        req = Request(kind, victim, t0, time.monotonic() + speech_s)
        got = fw.wait_event(since, _turn_end, time.monotonic() + speech_s + 20)
        if got is not None:
            req.done_at, req.outcome, req.detail = got[0], got[1], got[2][:120]
        req.kill_at = killer.join()
        if kind == "translate":
            fw.cmd("translate off")
        return req
    # A meeting: speech recorded, then transcribed and summarized in the background.
    fw.cmd("record start")
    said = fw.cmd(f"sim say {rng.choice(MEETING)}")
    speech_s = float(said.lines[0].split(", ")[1].split(" s)")[0]) if said.ok else 0.0
    time.sleep(speech_s + 0.3)
    since = len(fw.events)
    stop = fw.cmd("record stop")
    killer = Killer(pid, rng.uniform(0.0, 1.5))
    req = Request(kind, victim, t0, time.monotonic())
    if not stop.ok:
        req.outcome, req.done_at, req.detail = "error", time.monotonic(), stop.error
    else:
        got = fw.wait_event(since, _notes_end, time.monotonic() + MEETING_LIMIT_S)
        if got is not None:
            req.done_at, req.outcome, req.detail = got[0], got[1], got[2][:120]
    req.kill_at = killer.join()
    return req


# The translator's own end of a turn that went wrong: "translate en->zh: the model worker
# crashed", "translate en->zh unavailable: ...", "translate en->zh cancelled" (and it says so).
TRANSLATE_FAILED = re.compile(r"translate \w+->\w+(:| unavailable| cancelled)")


def _turn_end(text: str) -> str | None:
    if TRANSLATE_FAILED.match(text):
        return "apology"
    return next((outcome for prefix, outcome in TURN_ENDS if text.startswith(prefix)), None)


def _notes_end(text: str) -> str | None:
    # "notes ID waiting: ..." (the worker fell over) is not an end: the transcriber resumes.
    return "answered" if text.startswith("notes ") and " done: " in text else None


KINDS = ("ask", "command", "voice", "translate", "meeting", "read")


def run_kills(models_dir, kills: int = 100, seconds: float = 900.0, seed: int = 0,
              progress=print, every: int = 10, kinds=KINDS) -> dict:
    """The campaign: `kills` SIGKILLs during requests, then SIGSTOP, then a crash loop.

    Bounded by `seconds` of wall time (the SIGSTOP and crash-loop phases keep RESERVE_S of
    it). Returns counts, percentiles and `failures` (every broken promise; [] is a pass).
    """
    rng = random.Random(seed)
    start = time.monotonic()
    requests: list[Request] = []
    back_s = {"model": [], "voice": []}
    failures: list[str] = []
    ready_since = {}
    with tempfile.TemporaryDirectory(prefix="glasses-soak-") as tmp:
        fw = SoakedFirmware(Path(models_dir), Path(tmp))
        try:
            ready_since = {"model": time.monotonic(), "voice": time.monotonic()}
            stopped = ""
            for n in range(1, kills + 1):
                if time.monotonic() - start > seconds - RESERVE_S:
                    stopped = f"time limit of {seconds:.0f} s reached after {n - 1} of {kills} kills"
                    progress(stopped)
                    break
                victim = _stable_victim(rng, ready_since)
                pid = fw.status()[victim][1]
                req = _episode(fw, rng, rng.choice(kinds), pid, victim)
                requests.append(req)
                if req.kill_at is None:         # the request ended before the timer fired
                    continue
                back = fw.wait_ready((victim,), BACK_LIMIT_S, not_pid=pid)
                if back is None:
                    failures.append(f"kill {n}: the {victim} worker was not ready again "
                                    f"within {BACK_LIMIT_S:.0f} s")
                    break
                back_s[victim].append(back - req.kill_at)
                ready_since[victim] = back
                if n % every == 0:
                    progress(_line(n, kills, start, requests, back_s))
            result = {"seed": seed, "kills_asked": kills, "stopped": stopped,
                      "kills": sum(r.kill_at is not None for r in requests)}
            result["sigstop"] = _sigstop(fw, ready_since)
            result["crash_loop"] = _crash_loop(fw)
        finally:
            result_code = fw.stop(timeout_s=20)
    result.update(_measure(requests, back_s))
    result["exit_code"] = result_code
    result["elapsed_s"] = round(time.monotonic() - start, 1)
    result["failures"] = failures + _broken(result, requests)
    result["events"] = [f"{t - start:8.2f} {text}" for t, text in fw.events]
    result["log"] = [f"{r.sent_at - start:8.2f} {r.kind} {r.victim} kill "
                     f"{'-' if r.kill_at is None else round(r.kill_at - start, 2)} -> {r.outcome} "
                     f"{'-' if r.done_at is None else round(r.done_at - start, 2)} {r.detail}"
                     for r in requests]
    return result


def _stable_victim(rng, ready_since) -> str:
    """A worker that has been ready STABLE_S (sooner would be a crash loop), waiting if need be."""
    names = ["model", "voice"]
    rng.shuffle(names)
    wait = min(max(0.0, STABLE_S - (time.monotonic() - ready_since[n])) for n in names)
    time.sleep(wait)
    return next(n for n in names if time.monotonic() - ready_since[n] >= STABLE_S)


def _sigstop(fw: SoakedFirmware, ready_since) -> dict:
    """SIGSTOP the model worker during a question: the heartbeat catches it, the question ends."""
    time.sleep(max(0.0, STABLE_S - (time.monotonic() - ready_since["model"])))
    state, pid, _ = fw.status()["model"]
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    reply = fw.cmd(f"ask {QUESTIONS[1]}", timeout_s=60)
    answered = time.monotonic() - t0
    caught = None
    while time.monotonic() - t0 < 60 and caught is None:
        if fw.status()["model"][1] != pid:
            caught = time.monotonic() - t0
        time.sleep(POLL_S)
    back = fw.wait_ready(("model",), BACK_LIMIT_S, not_pid=pid)
    return {"detected_s": caught and round(caught, 2), "question_ended_s": round(answered, 2),
            "question": reply.error or " ".join(reply.lines)[:120],
            "back_s": back and round(back - t0, 2)}


def _crash_loop(fw: SoakedFirmware) -> dict:
    """Kill the model worker each time it is started: it must end `degraded`, in `status`."""
    t0, killed, state = time.monotonic(), set(), ""
    while time.monotonic() - t0 < 30:
        state, pid, _ = fw.status()["model"]
        if state == "degraded":
            break
        if pid is not None and pid not in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed.add(pid)
        time.sleep(0.05)
    text = [ln for ln in fw.cmd("status").lines if ln.startswith("worker")]
    t1 = time.monotonic()
    reply = fw.cmd(f"ask {QUESTIONS[0]}", timeout_s=30)
    return {"kills": len(killed), "state": state, "seconds": round(time.monotonic() - t0, 2),
            "status_line": text[0] if text else "", "ask_s": round(time.monotonic() - t1, 2),
            "ask": reply.error or " ".join(reply.lines)[:160]}


def _pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 3)


def _stats(values) -> dict:
    return {"n": len(values), "p50": _pct(values, 0.5), "p95": _pct(values, 0.95),
            "max": round(max(values), 3) if values else None}


def _measure(requests, back_s) -> dict:
    outcomes, kinds = {}, {}
    for r in requests:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    # Meetings are background work: their notes wait for the worker, so they are not timed.
    timed = [r.kill_to_outcome_s for r in requests
             if r.kind != "meeting" and r.kill_to_outcome_s is not None]
    return {"requests": len(requests), "outcomes": outcomes, "kinds": kinds,
            "in_flight_at_kill": sum(r.in_flight_at_kill for r in requests),
            "kill_to_outcome_s": _stats(timed),
            "over_limit": [f"{r.kind} ({r.victim} killed): {r.kill_to_outcome_s:.2f} s: {r.detail}"
                           for r in requests if r.kind != "meeting"
                           and (r.kill_to_outcome_s or 0) >= ANSWER_LIMIT_S],
            "lost": [f"{r.kind} ({r.victim} killed {'' if r.kill_at is None else 'in flight'}):"
                     f" {r.detail}" for r in requests if r.outcome == "lost"],
            "back_s": {name: _stats(v) for name, v in back_s.items()}}


def _broken(result, requests) -> list[str]:
    out = [f"no outcome: {x}" for x in result["lost"]]
    out += [f"over {ANSWER_LIMIT_S:.0f} s: {x}" for x in result["over_limit"]]
    s, c = result["sigstop"], result["crash_loop"]
    if s["detected_s"] is None or s["back_s"] is None:
        out.append(f"SIGSTOP not caught or not recovered: {s}")
    if c["state"] != "degraded" or "degraded" not in c["status_line"]:
        out.append(f"crash loop did not end degraded in status: {c}")
    if c["ask_s"] >= ANSWER_LIMIT_S:
        out.append(f"a question to the degraded worker took {c['ask_s']} s")
    if result["exit_code"] != 0:
        out.append(f"the firmware exited with {result['exit_code']} on SIGTERM")
    return out


def _line(n, kills, start, requests, back_s) -> str:
    m = _measure(requests, back_s)
    worst = m["kill_to_outcome_s"]["max"]
    back = max((x for v in back_s.values() for x in v), default=0.0)
    return (f"kills {n}/{kills} at {time.monotonic() - start:.0f} s: {m['requests']} requests "
            f"{m['outcomes']}, worst kill->outcome {worst if worst is not None else '-'} s, "
            f"worst back {back:.2f} s")


def summary(r: dict) -> str:
    """The campaign's result as a few lines of text."""
    def st(d):
        return "-" if not d["n"] else f"p50 {d['p50']} s, p95 {d['p95']} s, max {d['max']} s (n={d['n']})"
    s, c = r["sigstop"], r["crash_loop"]
    lines = [f"fault campaign (seed {r['seed']}): {r['kills']} SIGKILLs of {r['kills_asked']} asked "
             f"in {r['elapsed_s']} s" + (f"; {r['stopped']}" if r["stopped"] else ""),
             f"requests     {r['requests']} {r['kinds']}",
             f"outcomes     {r['outcomes']}; {r['in_flight_at_kill']} in flight at their kill",
             f"kill->answer {st(r['kill_to_outcome_s'])}",
             f"worker back  model {st(r['back_s']['model'])}; voice {st(r['back_s']['voice'])}",
             f"SIGSTOP      caught after {s['detected_s']} s, question ended after "
             f"{s['question_ended_s']} s, back after {s['back_s']} s",
             f"crash loop   {c['kills']} kills -> {c['state']} in {c['seconds']} s; "
             f"status: '{c['status_line']}'; ask then: {c['ask_s']} s: {c['ask'][:80]}",
             "result       " + ("PASS" if not r["failures"] else
                                f"FAIL ({len(r['failures'])}):")]
    lines += [f"  {f}" for f in r["failures"][:20]]
    return "\n".join(lines)

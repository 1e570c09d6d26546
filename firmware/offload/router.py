"""OffloadingModels: the on-board inference client, with some roles answered by a server.

It stands in for worker.client.InferenceClient behind the same ports (LanguageModels,
MeetingModels, VoiceModels): `generate` (llm), `transcribe`/`transcribe_stream` (asr) and
`tts` go to the role's server when one is set, everything else (and every role without a
server) to the on-board client unchanged. Services cannot tell, and do not change.

Fallback: a request the server does not answer within its deadline (the first token, for
the LLM), or that fails, is answered on the glasses at once. The role is then marked down:
one `EVT offload ROLE unreachable: WHY; answering on the glasses` and one log line, and
its requests go straight on-board while a probe retries the server with back-off (1 s
doubling to 60 s); when the server answers again, one `EVT offload ROLE back: ...`.

A stream cut mid-answer (the server killed, the network gone) is finished on the glasses:
a short spoken bridge, then the on-board model's whole answer from the start. The wearer
gets an answer rather than half of one and an apology; the bridge says why it restarts.

Each role's server is a declared table (unknown, up, down, stopped: TRANSITIONS);
`HealthMachine.fire` is its only move, and the EVTs above are said on its moves.
"""

import asyncio
import logging
import time

from glasses_firmware.drivers.errors import GlassesError

from .. import statetable
from ..statetable import Machine
from ..tasks import spawn
from ..worker.errors import RequestCancelled
from . import openai, wyoming
from .http import OffloadError

log = logging.getLogger("glasses.offload")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
BRIDGE = " The server stopped answering, so here is the answer from the glasses. "
WARM_UP_TOKENS = 1     # Conversation.warm_up: it fills the on-board cache, so it stays on-board

UNKNOWN, UP, DOWN, STOPPED = "unknown", "up", "down", "stopped"
INITIAL = UNKNOWN
# Requests race each other and the probe, so an event the table does not declare is news
# to nobody and is ignored: an answer while up changes nothing, a failure while down was
# said once for the outage, the probe finding the server back after a request already did,
# and anything after stop (a replaced setting's late answer: no revival).
TRANSITIONS = {
    (UNKNOWN, "ok"): UP,
    (UNKNOWN, "failed"): DOWN,
    (UP, "failed"): DOWN,
    (DOWN, "ok"): UP,              # a request sent before the outage was answered
    (DOWN, "probe_ok"): UP,        # the back-off probe was answered
    (UNKNOWN, "stop"): STOPPED,
    (UP, "stop"): STOPPED,
    (DOWN, "stop"): STOPPED,
}


class HealthMachine(Machine):
    """One server's state (unknown, up, down, stopped); `fire` is the only way it changes."""

    def __init__(self, role: str):
        super().__init__(TRANSITIONS, INITIAL, log, f"offload {role}", undeclared="ignore")


def mermaid() -> str:
    """An offloaded server's state diagram as Mermaid text, for docs/architecture.md."""
    return statetable.mermaid(TRANSITIONS, INITIAL)


class Health:
    """One role's server: up, down (and when to try again), and what it has served."""

    def __init__(self, role: str, server, events):
        self.role, self.server, self.events = role, server, events
        self.machine = HealthMachine(role)
        self.machine.subscribe(self._moved)
        self.reason = ""
        self.served = self.fallbacks = 0
        self.model_seen = ""
        self.backoff_s = BACKOFF_FIRST_S
        self.probe_task = None

    @property
    def state(self) -> str:
        return self.machine.state

    @property
    def usable(self) -> bool:
        return self.state != DOWN

    def ok(self) -> None:
        self.served += 1
        # Only a request answered resets the back-off: a server that answers the probe but
        # not the requests (overloaded) is retried ever less often, not every second.
        self.backoff_s = BACKOFF_FIRST_S
        self.machine.fire("ok", "a request was answered")

    def failed(self, why: str) -> None:
        self.fallbacks += 1
        self.reason = why
        self.machine.fire("failed", why)

    def _moved(self, old: str, new: str, event: str, reason: str) -> None:
        if new == DOWN:
            # Once per outage: the wearer and the log hear it, not every request.
            self.events.emit("offload", f"{self.role} unreachable: {reason}; "
                                        "answering on the glasses")
            log.warning("offload %s to %s unreachable: %s; answering on the glasses",
                        self.role, self.server.url, reason)
            if self.probe_task is None or self.probe_task.done():
                self.probe_task = spawn(self._probe(), name=f"offload-probe-{self.role}")
        elif old == DOWN and new == UP:
            self.events.emit("offload", f"{self.role} back: {self.server.url}; "
                                        "answering on the server")
            log.info("offload %s back: %s answers again", self.role, self.server.url)

    async def _probe(self) -> None:
        """Retry the server with back-off until it answers (or the setting changes)."""
        probe = openai.probe if self.server.protocol == "openai" else wyoming.probe
        while self.state == DOWN:
            await asyncio.sleep(self.backoff_s)
            if self.state != DOWN:
                return
            try:
                self.model_seen = await probe(self.server, self.server.deadline_s) or self.model_seen
            except OffloadError as e:
                self.reason = str(e)
                self.backoff_s = min(BACKOFF_MAX_S, 2 * self.backoff_s)
                continue
            self.backoff_s = min(BACKOFF_MAX_S, 2 * self.backoff_s)   # kept if it fails again
            self.machine.fire("probe_ok", "the server answered the probe")

    def stop(self) -> None:
        self.machine.fire("stop", "the setting changed")
        if self.probe_task is not None:
            self.probe_task.cancel()

    def status(self) -> dict:
        return {"server": self.server.masked(), "state": self.state, "reason": self.reason,
                "served": self.served, "fallbacks": self.fallbacks, "model_seen": self.model_seen,
                "retry_s": self.backoff_s if self.state == DOWN else None}


class TaskStream:
    """A Stream (ports.Stream) fed by a task: `async for` the partials, then `.result`."""

    def __init__(self, run):
        self.result = None
        self.queue: asyncio.Queue = asyncio.Queue()
        self.inner = None                      # the on-board stream, once it falls back
        self.finished = False
        self.task = spawn(self._drive(run), name="offload-request")

    async def _drive(self, run) -> None:
        # Whatever happens, one terminal item goes on the queue: the reader waits on nothing else.
        end = ("error", GlassesError("the offloaded request ended without an answer"))
        try:
            self.result = await run(self)
            end = ("done", None)
        except asyncio.CancelledError:
            end = ("error", RequestCancelled("offloaded request cancelled"))
        except GlassesError as e:
            end = ("error", e)
        except Exception as e:                  # a bug must not leave the reader waiting
            log.exception("offloaded request failed")
            end = ("error", GlassesError(f"the offloaded request failed: {type(e).__name__}: {e}"))
        finally:
            self.queue.put_nowait(end)

    def put(self, item) -> None:
        self.queue.put_nowait(("item", item))

    def cancel(self) -> None:
        if self.inner is not None:
            self.inner.cancel()
        if not self.task.done():
            self.task.cancel()

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        # No wait_for here: _drive always ends with a terminal item, and the task's own
        # deadlines (server, then on-board) bound how long that takes.
        what, value = await self.queue.get()
        if what == "item":
            return value
        self.finished = True
        if what == "done":
            raise StopAsyncIteration
        raise value

    async def wait(self):
        async for _ in self:
            pass
        return self.result


class OffloadingModels:
    """The on-board client `onboard`, with the roles in `servers` offloaded (see module doc)."""

    def __init__(self, onboard, servers: dict, events):
        self.onboard, self.events = onboard, events
        self.health: dict[str, Health] = {}
        self.configure(servers)

    def __getattr__(self, name):
        # Everything not offloaded (state, start, vad, wake, ocr, embed_speaker...) is the
        # on-board client's own.
        return getattr(self.onboard, name)

    def configure(self, servers: dict) -> None:
        """Use these servers from now on ({role: settings.Server}); {} turns offload off."""
        for role, h in list(self.health.items()):
            if servers.get(role) != h.server:
                h.stop()
                del self.health[role]
        for role, server in servers.items():
            if role not in self.health:
                self.health[role] = Health(role, server, self.events)

    def status(self) -> dict:
        return {role: h.status() for role, h in self.health.items()}

    def _route(self, role: str, ok_for_server: bool = True) -> Health | None:
        h = self.health.get(role)
        if h is None or not ok_for_server:
            return None
        if not h.usable:
            h.fallbacks += 1            # answered on the glasses while the server is down
            return None
        return h

    # -- llm -----------------------------------------------------------------------------
    def generate(self, prompt: str | None = None, *, messages: list[dict] | None = None,
                 system: str | None = None, max_tokens: int = 256, **kw):
        h = self._route("llm", max_tokens > WARM_UP_TOKENS)
        if h is None:
            return self.onboard.generate(prompt, messages=messages, system=system,
                                         max_tokens=max_tokens, **kw)
        msgs = list(messages or [])
        if system is not None:
            msgs.insert(0, {"role": "system", "content": system})
        if prompt is not None:
            msgs.append({"role": "user", "content": prompt})

        async def run(stream: TaskStream):
            text, t0 = "", time.perf_counter()
            try:
                async for piece in openai.chat(h.server, msgs, max_tokens):
                    if not text:
                        log.info("offload llm: first token from %s after %.0f ms", h.server.url,
                                 (time.perf_counter() - t0) * 1000)
                    text += piece
                    stream.put(piece)
                h.ok()
                return {"text": text, "offload": h.server.url}
            except OffloadError as e:
                h.failed(str(e))
                if text:
                    stream.put(BRIDGE)
            stream.inner = self.onboard.generate(messages=msgs, max_tokens=max_tokens, **kw)
            async for piece in stream.inner:
                stream.put(piece)
            return stream.inner.result
        return TaskStream(run)

    # -- asr -----------------------------------------------------------------------------
    def transcribe_stream(self, audio, *, task: str = "transcribe", language=None, **kw):
        h = self.health.get("asr")
        # Wyoming has no translate task: that stays on the glasses, and is no failure.
        server_can = h is not None and not (task == "translate" and h.server.protocol == "wyoming")
        h = self._route("asr", server_can)
        if h is None:
            return self.onboard.transcribe_stream(audio, task=task, language=language, **kw)
        one = language if isinstance(language, str) else None

        async def run(stream: TaskStream):
            t0 = time.perf_counter()
            try:
                if h.server.protocol == "openai":
                    got = await openai.transcribe(h.server, audio, task, one)
                else:
                    got = await asyncio.wait_for(wyoming.transcribe(h.server, audio, one),
                                                 h.server.deadline_s)
                h.ok()
                log.info("asr offloaded: %.0f ms", (time.perf_counter() - t0) * 1000)
                stream.put(got["text"])
                return got
            except (OffloadError, asyncio.TimeoutError) as e:
                h.failed(str(e) or f"no transcript within {h.server.deadline_s:g} s")
            stream.inner = self.onboard.transcribe_stream(audio, task=task, language=language, **kw)
            async for partial in stream.inner:
                stream.put(partial)
            return stream.inner.result
        return TaskStream(run)

    async def transcribe(self, audio, **kw) -> dict:
        return await self.transcribe_stream(audio, **kw).wait()

    # -- tts -----------------------------------------------------------------------------
    async def tts(self, text: str, timeout_s: float = 30.0):
        h = self._route("tts")
        if h is not None:
            try:
                got = await asyncio.wait_for(wyoming.synthesize(h.server, text),
                                             h.server.deadline_s)
                h.ok()
                return got
            except (OffloadError, asyncio.TimeoutError) as e:
                h.failed(str(e) or f"no audio within {h.server.deadline_s:g} s")
        return await self.onboard.tts(text, timeout_s=timeout_s)

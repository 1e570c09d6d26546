"""`InferenceClient`: the firmware's only way to the models, over the supervised worker.

    client = InferenceClient(models_dir, threads=board.inference.threads)
    await client.start()
    async for piece in client.generate("What time is it?", system="Be brief."):
        ...
    heard = await client.transcribe(audio_16k_float32)   # {"text", "language", "language_prob"}
    voice = await client.embed_speaker(audio_16k_float32)  # float32 [256], unit norm
    await client.stop()

Streaming audio roles: `await client.vad(chunk)` and `await client.wake(chunk)` take
consecutive chunks of one 16 kHz stream (any length; 32-96 ms and 80 ms are the usual);
the worker keeps the stream's state between calls until `reset=True`. Only the wake words
named by `wake_words` (default "hey_jarvis") are loaded and run.

Every request has an id, a deadline (`timeout_s`) and a priority; `cancel(id)` stops it
and the stream then raises `RequestCancelled` (nothing of that request arrives after).
"""

import asyncio
import itertools
import logging
import time

import numpy as np

from glasses_firmware.drivers.errors import ConfigError

from . import protocol as P
from .errors import BadInput, DeadlineExceeded, RequestCancelled, WorkerCrashed, from_worker
from .supervisor import Supervisor, SupervisorSettings

log = logging.getLogger("glasses.worker")
DEFAULT_WAKE_WORDS = ("hey_jarvis",)   # the product's wake word
DEADLINE_GRACE_S = 2.0   # the worker reports its own deadline; this covers a silent worker


class Stream:
    """One request's results: `async for` the partials, then `.result` holds the final value."""

    def __init__(self, client: "InferenceClient", kind: str, args: dict, arrays: dict,
                 priority: int, timeout_s: float):
        self.client = client
        self.id = next(client._ids)
        self.kind = kind
        self.args = args
        self.arrays = arrays
        self.priority = priority
        self.deadline_s = time.monotonic() + timeout_s
        self.queue: asyncio.Queue = asyncio.Queue()
        self.shms = []
        self.submitted = False
        self.finished = False
        self.cancel_requested = False
        self.result = None

    def cancel(self) -> None:
        self.client.cancel(self.id)

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        if not self.submitted:
            await self.client._submit(self)
        remaining = self.deadline_s + DEADLINE_GRACE_S - time.monotonic()
        try:
            what, value = await asyncio.wait_for(self.queue.get(), max(0.0, remaining))
        except asyncio.TimeoutError:
            self.client.cancel(self.id)
            self.client._finish(self)
            raise DeadlineExceeded(f"request {self.id} ({self.kind}) got no answer before its "
                                   "deadline") from None
        if what == "item":
            return value
        self.finished = True
        if what == "done":
            self.result = value
            raise StopAsyncIteration
        raise value

    async def wait(self):
        """Drain the partials and return the final value."""
        async for _ in self:
            pass
        return self.result


class InferenceClient:
    """Supervised inference worker. `state` is one of `supervisor.STATES`."""

    def __init__(self, models_dir, threads: int, clock=None, *, preload=(),
                 settings: SupervisorSettings | None = None,
                 wake_words: tuple[str, ...] = DEFAULT_WAKE_WORDS,
                 role_options: dict | None = None):
        self._ids = itertools.count(1)
        self._pending: dict[int, Stream] = {}
        self.stray_messages = 0   # messages for requests already finished: must stay 0
        self.wake_words = tuple(wake_words)
        if not self.wake_words:
            raise ConfigError("wake_words needs at least one wake word")
        # Per-role settings the worker passes to the role's class (JSON-able), e.g.
        # {"llm": {"session_options": {"session.intra_op.allow_spinning": "0"}}}.
        options = {role: dict(kw) for role, kw in (role_options or {}).items()}
        options.setdefault("wake", {})["words"] = list(self.wake_words)
        self.supervisor = Supervisor(models_dir, threads, settings or SupervisorSettings(),
                                     self._on_message, self._on_failure, clock, preload, options)

    @property
    def state(self) -> str:
        return self.supervisor.state

    @property
    def worker_pid(self) -> int | None:
        return self.supervisor.pid

    async def start(self, timeout_s: float | None = None) -> None:
        """Start the worker and wait until it is ready; raises if it ends degraded."""
        self.supervisor.start()
        await self.wait_ready(timeout_s or self.supervisor.settings.start_timeout_s)

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.state != "ready":
            if self.state in ("degraded", "stopped", "not_started"):
                raise self.supervisor.unavailable_error()
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(f"the inference worker is still {self.state} after "
                                       f"{timeout_s:.0f} s ({self.supervisor.reason})")
            try:
                await asyncio.wait_for(self.supervisor.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        await self.supervisor.stop()

    def cancel(self, request_id: int) -> None:
        """Ask the worker to stop a request; its stream ends with RequestCancelled."""
        s = self._pending.get(request_id)
        if s is None or s.finished or s.cancel_requested:
            return
        s.cancel_requested = True
        if not s.submitted:
            self._finish(s)
            s.queue.put_nowait(("cancelled", RequestCancelled(f"request {s.id} cancelled")))
            return
        try:
            self.supervisor.send({"op": "cancel", "id": request_id})
        except Exception as e:  # the worker is gone: its failure path ends the stream
            log.info("cancel %s not sent: %s", request_id, e)

    # -- requests -------------------------------------------------------------------

    def request(self, kind: str, args: dict | None = None, arrays: dict | None = None, *,
                priority: int = P.PRIORITY_NORMAL, timeout_s: float = 30.0) -> Stream:
        s = Stream(self, kind, args or {}, arrays or {}, priority, timeout_s)
        self._pending[s.id] = s
        return s

    def generate(self, prompt: str | None = None, *, messages: list[dict] | None = None,
                 system: str | None = None, max_tokens: int = 256,
                 priority: int = P.PRIORITY_INTERACTIVE, timeout_s: float = 120.0) -> Stream:
        """Stream text pieces of the assistant's reply (chat template applied in the worker)."""
        msgs = list(messages or [])
        if system is not None:
            msgs.insert(0, {"role": "system", "content": system})
        if prompt is not None:
            msgs.append({"role": "user", "content": prompt})
        return self.request("generate", {"messages": msgs, "max_tokens": max_tokens},
                            priority=priority, timeout_s=timeout_s)

    def transcribe_stream(self, audio: np.ndarray, *, task: str = "transcribe",
                          language: str | list[str] | None = None,
                          priority: int = P.PRIORITY_INTERACTIVE,
                          timeout_s: float = 60.0) -> Stream:
        """The text so far after each token of 16 kHz mono float32 audio; then `.result`.

        `.result` is {"text": str, "language": code or None, "language_prob": float or
        None}: the language detected (or the one forced with `language`, e.g. "zh"; a list
        of codes detects among those only) and the model's probability of it. `task="translate"` gives English text. Audio of
        any length (longer than 30 s is transcribed window by window); under 0.1 s, or
        silence, gives "". NaN/inf samples or an unknown task raise BadInput here; a
        language the model lacks raises BadInput from the worker.
        """
        if task not in ("transcribe", "translate"):
            raise BadInput(f"ASR task {task!r} is not one of transcribe, translate")
        if isinstance(language, (list, tuple)):
            language = list(language)
            if not language or not all(isinstance(c, str) for c in language):
                raise BadInput(f"languages to choose from must be codes such as 'en', not {language!r}")
        elif language is not None and not isinstance(language, str):
            raise BadInput(f"language must be a code such as 'en', a list of codes, or None, "
                           f"not {language!r}")
        samples = _f32(audio)
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            raise BadInput(f"audio has {bad} NaN or infinite samples of {len(samples)}; "
                           "refusing to transcribe it")
        return self.request("transcribe", {"task": task, "language": language},
                            {"audio": samples}, priority=priority, timeout_s=timeout_s)

    async def transcribe(self, audio: np.ndarray, **kw) -> dict:
        """{"text", "language", "language_prob"} of the whole audio (see transcribe_stream)."""
        return await self.transcribe_stream(audio, **kw).wait()

    async def vad(self, audio: np.ndarray, timeout_s: float = 10.0, *,
                  reset: bool = False) -> np.ndarray:
        """Speech probability per 512-sample (32 ms) chunk of 16 kHz audio.

        `audio` continues the stream of the previous call (model state, and samples short
        of a whole chunk, carry over), so a call returns one value per chunk it completes;
        `reset=True` starts a new stream with this audio.
        """
        r = await self.request("vad", {"reset": True} if reset else {}, {"audio": _f32(audio)},
                               priority=P.PRIORITY_INTERACTIVE, timeout_s=timeout_s).wait()
        return np.asarray(r["probabilities"], np.float32)

    async def wake(self, audio: np.ndarray, timeout_s: float = 10.0, *, reset: bool = False,
                   models: tuple[str, ...] | None = None) -> dict[str, float]:
        """{wake word: highest probability over the 80 ms steps this audio completes}.

        Consecutive calls are one stream (the 8 s feature window carries over; `reset=True`
        refills it with silence). `models` picks the wake words for this call (default:
        the client's `wake_words`); a word not loaded yet is loaded on first use.
        """
        args = {"models": list(models or self.wake_words)}
        if reset:
            args["reset"] = True
        r = await self.request("wake", args, {"audio": _f32(audio)},
                               priority=P.PRIORITY_INTERACTIVE, timeout_s=timeout_s).wait()
        return r["scores"]

    async def grammar(self, audio: np.ndarray, phrases: list[str], timeout_s: float = 10.0) -> dict:
        """{"text": best phrase or "", "score": hypothesis score} from the command grammar."""
        return await self.request("grammar", {"phrases": list(phrases)}, {"audio": _f32(audio)},
                                  priority=P.PRIORITY_INTERACTIVE, timeout_s=timeout_s).wait()

    async def tts(self, text: str, timeout_s: float = 30.0) -> tuple[np.ndarray, int]:
        """(float32 mono audio, sample rate in Hz)."""
        r = await self.request("tts", {"text": text}, priority=P.PRIORITY_INTERACTIVE,
                               timeout_s=timeout_s).wait()
        return P.fetch(P.TensorRef.from_json(r["audio"]), unlink=True), int(r["rate_hz"])

    async def embed_speaker(self, audio: np.ndarray, timeout_s: float = 30.0, *,
                            priority: int = P.PRIORITY_BACKGROUND) -> np.ndarray:
        """The voice of one speaker's 16 kHz mono utterance: float32 [256], unit norm.

        Utterances of one voice give nearby embeddings; compare them by dot product (cosine
        similarity; firmware/meeting/speakers.py groups them). Background priority by
        default: meeting notes wait for the assistant. NaN/inf samples raise BadInput here,
        less than 0.5 s of speech raises BadInput from the worker.
        """
        samples = _f32(audio)
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        if bad:
            raise BadInput(f"audio has {bad} NaN or infinite samples of {len(samples)}; "
                           "refusing to embed it")
        r = await self.request("embed_speaker", {}, {"audio": samples}, priority=priority,
                               timeout_s=timeout_s).wait()
        return np.asarray(r["embedding"], np.float32)

    async def ocr(self, image_rgb: np.ndarray, timeout_s: float = 30.0) -> list[dict]:
        r = await self.request("ocr", arrays={"image": np.asarray(image_rgb, np.uint8)},
                               timeout_s=timeout_s).wait()
        return r["lines"]

    async def ping(self, timeout_s: float = 5.0) -> dict:
        return await self.request("ping", timeout_s=timeout_s).wait()

    # -- plumbing -------------------------------------------------------------------

    async def _submit(self, s: Stream) -> None:
        s.submitted = True
        if self.state != "ready":
            if self.state in ("degraded", "stopped", "not_started"):
                self._finish(s)
                raise self.supervisor.unavailable_error()
            await self.wait_ready(max(0.0, s.deadline_s - time.monotonic()))
        tensors = {}
        for name, arr in s.arrays.items():
            shm, ref = P.share(arr)
            s.shms.append(shm)
            tensors[name] = ref
        s.arrays = {}
        req = P.Request(s.id, s.kind, s.deadline_s, s.priority, s.args, tensors)
        try:
            self.supervisor.send(req)
        except Exception:
            self._finish(s)
            raise

    def _finish(self, s: Stream) -> None:
        self._pending.pop(s.id, None)
        for shm in s.shms:
            P.release(shm)
        s.shms = []

    def _on_message(self, msg: dict) -> None:
        s = self._pending.get(int(msg["id"]))
        if s is None:
            self.stray_messages += 1
            log.warning("worker message for finished request %s dropped: %s", msg["id"], msg["op"])
            return
        op = msg["op"]
        if op == "item":
            s.queue.put_nowait(("item", msg["value"]))
            return
        self._finish(s)
        if op == "done":
            s.queue.put_nowait(("done", msg["value"]))
        elif op == "cancelled":
            s.queue.put_nowait(("cancelled", RequestCancelled(
                f"request {s.id} ({s.kind}) was cancelled; the worker acknowledged it")))
        else:
            s.queue.put_nowait(("error", from_worker(msg.get("kind", ""), msg.get("message", ""))))

    def _on_failure(self, reason: str) -> None:
        for s in list(self._pending.values()):
            if s.submitted and not s.finished:
                self._finish(s)
                s.queue.put_nowait(("error", WorkerCrashed(
                    f"request {s.id} ({s.kind}) failed: the inference worker {reason}"
                    + ("" if reason == "was stopped" else "; it is being restarted"))))


def _f32(audio) -> np.ndarray:
    return np.asarray(audio, np.float32).reshape(-1)

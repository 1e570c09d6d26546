"""The worker protocol: typed messages as JSON over a pipe, tensors in shared memory.

Every message is one JSON object sent with `Connection.send_bytes` (never pickled), so
either side can be replaced and a malformed message is a clear error, not code execution.
Audio and image arrays travel as `TensorRef`s naming a `multiprocessing.shared_memory`
block: the sender creates and fills it, the receiver copies out, the creator unlinks it.

Client -> worker: `request`, `cancel`, `stop`.
Worker -> client: `ready`, `hb` (heartbeat), `item` (a streamed partial: a token, a partial
transcript), `done` (final result), `error`, `cancelled` (the cancel acknowledgement: the
worker sends nothing more for that id afterwards).
"""

import json
from dataclasses import dataclass, field
from multiprocessing import shared_memory

import numpy as np

from glasses_firmware.drivers.errors import GlassesError

PROTOCOL_VERSION = 1

# Lower runs first; a request is never pre-empted once started.
PRIORITY_INTERACTIVE = 0
PRIORITY_NORMAL = 1
PRIORITY_BACKGROUND = 2

KINDS = ("ping", "generate", "transcribe", "vad", "wake", "grammar", "tts", "ocr",
         "embed_speaker")
CLIENT_OPS = ("request", "cancel", "stop")
WORKER_OPS = ("ready", "hb", "item", "done", "error", "cancelled")
_DTYPES = ("float32", "int16", "uint8", "int64")


class ProtocolError(GlassesError, ValueError):
    """A message on the worker pipe is malformed; the text says which field."""


@dataclass(frozen=True)
class TensorRef:
    """An array living in a shared-memory block: name, dtype, shape."""

    shm: str
    dtype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"shm": self.shm, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> "TensorRef":
        _need(d, ("shm", "dtype", "shape"), "tensor")
        if d["dtype"] not in _DTYPES:
            raise ProtocolError(f"tensor dtype {d['dtype']!r} not one of {', '.join(_DTYPES)}")
        return cls(str(d["shm"]), d["dtype"], tuple(int(n) for n in d["shape"]))


@dataclass(frozen=True)
class Request:
    """One unit of work. `deadline_s` is host CLOCK_MONOTONIC (shared by both processes)."""

    id: int
    kind: str
    deadline_s: float
    priority: int = PRIORITY_NORMAL
    args: dict = field(default_factory=dict)
    tensors: dict[str, TensorRef] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"op": "request", "id": self.id, "kind": self.kind, "deadline_s": self.deadline_s,
                "priority": self.priority, "args": self.args,
                "tensors": {k: t.to_json() for k, t in self.tensors.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "Request":
        _need(d, ("id", "kind", "deadline_s"), "request")
        if d["kind"] not in KINDS:
            raise ProtocolError(f"request kind {d['kind']!r} not one of {', '.join(KINDS)}")
        return cls(int(d["id"]), d["kind"], float(d["deadline_s"]), int(d.get("priority", 1)),
                   dict(d.get("args") or {}),
                   {k: TensorRef.from_json(t) for k, t in (d.get("tensors") or {}).items()})


def encode(msg) -> bytes:
    """A message (dict or Request) as the bytes sent over the pipe."""
    d = msg.to_json() if isinstance(msg, Request) else msg
    if d.get("op") not in CLIENT_OPS + WORKER_OPS:
        raise ProtocolError(f"unknown op {d.get('op')!r}")
    return json.dumps(d, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode(data: bytes) -> dict:
    """Bytes from the pipe as a dict; requests come back as `Request` under key `request`."""
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"worker message is not JSON: {e}") from None
    if not isinstance(d, dict) or d.get("op") not in CLIENT_OPS + WORKER_OPS:
        raise ProtocolError(f"worker message has no known op: {str(d)[:80]}")
    if d["op"] == "request":
        d["request"] = Request.from_json(d)
    elif d["op"] != "hb" and d["op"] != "ready" and d["op"] != "stop":
        _need(d, ("id",), d["op"])
    return d


def _need(d: dict, keys, what: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise ProtocolError(f"{what} message lacks {', '.join(missing)}")


def share(array: np.ndarray) -> tuple[shared_memory.SharedMemory, TensorRef]:
    """Copy `array` into a new shared-memory block; the caller unlinks the block."""
    a = np.ascontiguousarray(array)
    if a.dtype.name not in _DTYPES:
        raise ProtocolError(f"cannot share dtype {a.dtype.name}; use one of {', '.join(_DTYPES)}")
    shm = shared_memory.SharedMemory(create=True, size=max(1, a.nbytes))
    np.ndarray(a.shape, a.dtype, buffer=shm.buf)[...] = a
    return shm, TensorRef(shm.name, a.dtype.name, tuple(a.shape))


def fetch(ref: TensorRef, unlink: bool = False) -> np.ndarray:
    """A private copy of the array behind `ref`; `unlink` frees the block afterwards."""
    try:
        shm = shared_memory.SharedMemory(name=ref.shm)
    except FileNotFoundError:
        raise ProtocolError(f"shared-memory block {ref.shm} is gone") from None
    try:
        view = np.ndarray(ref.shape, np.dtype(ref.dtype), buffer=shm.buf)
        out = view.copy()
        del view  # the buffer cannot close while a view exports it
    finally:
        shm.close()
        if unlink:
            shm.unlink()
    return out


def release(shm: shared_memory.SharedMemory) -> None:
    """Close and unlink a block this side created; a second call is harmless."""
    shm.close()
    try:
        shm.unlink()
    except FileNotFoundError:
        pass

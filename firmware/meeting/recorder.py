"""Meeting recording: microphone audio in durable segments under recordings/<id>/.

Audio is kept as 16 kHz mono 16-bit WAV segments, each written atomically and fsynced
when it completes, so a power cut loses at most the segment in progress. `info.json`
says when the meeting started and ended (ended is missing after a power cut).
Segments are sealed under the device key (drivers/sealed.py): the card alone holds no
sound; `info.json` holds only times and counts, which the directory's name shows anyway.
"""

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.atomic import unused, write_atomic
from glasses_firmware.drivers.errors import GlassesError, StorageFull
from glasses_firmware.drivers.sealed import Sealer
from glasses_firmware.drivers.wavio import wav_bytes

from ..arbiter import Busy
from ..power import modes as m
from ..ports import Blocking, Claims, Clock, EventSink, ModeGate
from ..tasks import spawn

log = logging.getLogger("glasses.recorder")

RATE_HZ = 16000
SEGMENT_S = 30.0


class RecordingRefused(GlassesError, RuntimeError):
    """A meeting recording could not start; the message says why."""


class Recorder:
    """Meeting recording into `<data_dir>/recordings/<id>/`; audio comes from the hub,
    segments are sealed by `sealer`."""

    def __init__(self, hub, claims: Claims, modes: ModeGate, clock: Clock, events: EventSink,
                 blocking: Blocking, data_dir: Path, *, sealer: Sealer):
        self.hub, self.claims, self.modes, self.clock = hub, claims, modes, clock
        self.events, self.blocking, self.sealer = events, blocking, sealer
        self.root = Path(data_dir) / "recordings"
        self.task: asyncio.Task | None = None
        self.dir: Path | None = None
        self._claim = None
        self.segments = 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start(self) -> Path:
        if self.running:
            raise RecordingRefused(f"already recording into {self.dir.name}; `record stop` first")
        if not self.modes.allowed("record_start"):
            raise RecordingRefused(f"cannot start a recording in {self.modes.mode} mode")
        try:
            self._claim = self.claims.acquire("meeting", ["microphones"])
        except Busy as e:
            raise RecordingRefused(str(e)) from None
        wall = self.clock.wall()
        self.dir = unused(self.root / time.strftime("%Y%m%d-%H%M%S", time.localtime(wall)))
        self.segments = 0
        self._info = {"started": wall, "rate_hz": RATE_HZ, "segment_s": SEGMENT_S}
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            await self.blocking.run(write_atomic, self.dir / "info.json",
                                    json.dumps(self._info).encode())
        except OSError as e:        # StorageFull says what to do
            self.claims.release(self._claim)
            with contextlib.suppress(OSError):
                self.dir.rmdir()    # only if empty: an earlier recording's files stay
            self.events.emit("fault", f"record not started: {e}")
            raise RecordingRefused(f"cannot start a recording: {e}") from None
        self.modes.fire("record_start", "meeting recording started")
        self._buf, self._have = [], 0
        self.hub.subscribe("meeting", self._on_chunk)
        self.task = asyncio.create_task(self._run(), name="recorder")
        self.events.emit("record", f"started {self.dir.name}")
        return self.dir

    def _on_chunk(self, chunk) -> None:
        self._buf.append(chunk)
        self._have += len(chunk)

    async def _run(self) -> None:
        # Audio arrives through the hub (the one reader of the microphones, which also
        # reports and reopens a failed stream) into a buffer; this task cuts it into
        # segments on the firmware's clock, so virtual time works as real time does.
        per_segment = int(RATE_HZ * SEGMENT_S)
        while True:
            await self.clock.asleep(1.0)
            if self._have >= per_segment:
                chunks, self._buf, self._have = self._buf, [], 0
                try:
                    await self._write_segment(chunks)
                except OSError as e:
                    # A full disk (StorageFull) or a failing card: the segments already
                    # written stay; this one is lost, and the recording stops and says so.
                    self.events.emit("fault", f"record {self.dir.name} stopped: {e}")
                    log.error("recording %s stopped: %s", self.dir.name, e)
                    self._buf, self._have = [], 0
                    full = isinstance(e, StorageFull)
                    spawn(self.stop("the disk is full" if full else "a segment could not be saved"),
                          name="recorder-stop")
                    return

    async def _write_segment(self, chunks) -> None:
        path = self.dir / f"seg-{self.segments + 1:05d}.wav"
        await self.blocking.run(self.sealer.write, path, wav_bytes(np.concatenate(chunks), RATE_HZ))
        self.segments += 1

    async def stop(self, reason: str = "stopped") -> Path | None:
        # The task may have ended by itself (a segment could not be written): still stop.
        if self.task is None:
            return None
        task, self.task = self.task, None
        self.hub.unsubscribe("meeting")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            if self._buf:
                # The last, partial segment: written here, not by the task just cancelled
                # (this runs when the battery is about to die).
                chunks, self._buf, self._have = self._buf, [], 0
                await self._write_segment(chunks)
            self._info["ended"] = self.clock.wall()
            self._info["segments"] = self.segments
            await self.blocking.run(write_atomic, self.dir / "info.json",
                                    json.dumps(self._info).encode())
        except OSError as e:
            # The segments on disk are the recording; only its ending is not recorded.
            self.events.emit("fault", f"record {self.dir.name}: the end was not saved: {e}")
            log.error("recording %s: the end was not saved: %s", self.dir.name, e)
        finally:
            self.claims.release(self._claim)
        if self.modes.mode == m.RECORDING:
            self.modes.fire("record_stop", reason)
        self.events.emit("record", f"saved {self.dir.name} ({self.segments} segments, {reason})")
        return self.dir

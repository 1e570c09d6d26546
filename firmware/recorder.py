"""Meeting recording: microphone audio in durable segments under recordings/<id>/.

Audio is kept as 16 kHz mono 16-bit WAV segments, each written atomically and fsynced
when it completes, so a power cut loses at most the segment in progress. `info.json`
says when the meeting started and ended (ended is missing after a power cut).
"""

import asyncio
import json
import logging
import time
from pathlib import Path

import numpy as np

from drivers.atomic import write_atomic
from drivers.errors import GlassesError
from drivers.wavio import wav_bytes

from .arbiter import Busy

log = logging.getLogger("glasses.recorder")

RATE_HZ = 16000
SEGMENT_S = 30.0
GAP_REPORT_S = 3.0


class RecordingRefused(GlassesError, RuntimeError):
    """A meeting recording could not start; the message says why."""


class Recorder:
    def __init__(self, fw):
        self.fw = fw
        self.task: asyncio.Task | None = None
        self.dir: Path | None = None
        self._claim = None
        self.segments = 0

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def start(self) -> Path:
        fw = self.fw
        if self.running:
            raise RecordingRefused(f"already recording into {self.dir.name}; `record stop` first")
        if not fw.machine.allowed("record_start"):
            raise RecordingRefused(f"cannot start a recording in {fw.machine.mode} mode")
        try:
            self._claim = fw.arbiter.acquire("meeting", ["microphones"])
        except Busy as e:
            raise RecordingRefused(str(e)) from None
        wall = fw.clock.wall()
        self.dir = fw.data_dir / "recordings" / time.strftime("%Y%m%d-%H%M%S", time.localtime(wall))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segments = 0
        self._info = {"started": wall, "rate_hz": RATE_HZ, "segment_s": SEGMENT_S}
        write_atomic(self.dir / "info.json", json.dumps(self._info).encode())
        fw.machine.fire("record_start", "meeting recording started")
        self._buf, self._have, self._heard_at = [], 0, fw.clock.monotonic()
        fw.audio.subscribe("meeting", self._on_chunk)
        self.task = asyncio.create_task(self._run(), name="recorder")
        fw.events.emit("record", f"started {self.dir.name}")
        return self.dir

    def _on_chunk(self, chunk) -> None:
        self._buf.append(chunk)
        self._have += len(chunk)
        self._heard_at = self.fw.clock.monotonic()

    async def _run(self) -> None:
        # Audio arrives through the hub (the one reader of the microphones) into a buffer;
        # this task cuts it into segments on the firmware's clock, so virtual time
        # (simulate-day) works the same as real time.
        per_segment = int(RATE_HZ * SEGMENT_S)
        reported = False
        while True:
            await self.fw.clock.asleep(1.0)
            if self._have >= per_segment:
                chunks, self._buf, self._have = self._buf, [], 0
                await self._write_segment(chunks)
            silent = self.fw.clock.monotonic() - self._heard_at > GAP_REPORT_S
            if silent and not reported:
                self.fw.events.emit("fault", "microphones: no audio for the recording")
            reported = silent

    async def _write_segment(self, chunks) -> None:
        self.segments += 1
        path = self.dir / f"seg-{self.segments:05d}.wav"
        await self.fw.run_blocking(write_atomic, path, wav_bytes(np.concatenate(chunks), RATE_HZ))

    async def stop(self, reason: str = "stopped") -> Path | None:
        if not self.running:
            return None
        self.fw.audio.unsubscribe("meeting")
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.task = None
        if self._buf:
            # The last, partial segment: written here, so nothing depends on a task that
            # is being cancelled (this runs when the battery is about to die).
            chunks, self._buf, self._have = self._buf, [], 0
            self.segments += 1
            write_atomic(self.dir / f"seg-{self.segments:05d}.wav",
                         wav_bytes(np.concatenate(chunks), RATE_HZ))
        self._info["ended"] = self.fw.clock.wall()
        self._info["segments"] = self.segments
        write_atomic(self.dir / "info.json", json.dumps(self._info).encode())
        self.fw.arbiter.release(self._claim)
        if self.fw.machine.mode == "RECORDING":
            self.fw.machine.fire("record_stop", reason)
        self.fw.events.emit("record", f"saved {self.dir.name} ({self.segments} segments, {reason})")
        return self.dir

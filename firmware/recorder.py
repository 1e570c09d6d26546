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
        self.task = asyncio.create_task(self._run(), name="recorder")
        fw.events.emit("record", f"started {self.dir.name}")
        return self.dir

    async def _run(self) -> None:
        # Audio arrives through the hub (the one reader of the microphones); segments are
        # cut here on the firmware's clock, so virtual time (simulate-day) works the same.
        buf, have, quiet_polls = [], 0, 0
        queue: asyncio.Queue = asyncio.Queue()
        self.fw.audio.subscribe("meeting", queue.put_nowait)
        per_segment = int(RATE_HZ * SEGMENT_S)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), GAP_REPORT_S)
                except asyncio.TimeoutError:
                    quiet_polls += 1
                    if quiet_polls == 1:
                        self.fw.events.emit("fault", "microphones: no audio for the recording")
                    continue
                quiet_polls = 0
                buf.append(chunk)
                have += len(chunk)
                if have >= per_segment:
                    await self._flush(buf)
                    buf, have = [], 0
        finally:
            self.fw.audio.unsubscribe("meeting")
            while not queue.empty():
                buf.append(queue.get_nowait())
            if buf:
                await asyncio.shield(self._flush(buf))

    async def _flush(self, chunks) -> None:
        self.segments += 1
        path = self.dir / f"seg-{self.segments:05d}.wav"
        data = wav_bytes(np.concatenate(chunks), RATE_HZ)
        await self.fw.run_blocking(write_atomic, path, data)

    async def stop(self, reason: str = "stopped") -> Path | None:
        if not self.running:
            return None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.task = None
        self._info["ended"] = self.fw.clock.wall()
        self._info["segments"] = self.segments
        write_atomic(self.dir / "info.json", json.dumps(self._info).encode())
        self.fw.arbiter.release(self._claim)
        if self.fw.machine.mode == "RECORDING":
            self.fw.machine.fire("record_stop", reason)
        self.fw.events.emit("record", f"saved {self.dir.name} ({self.segments} segments, {reason})")
        return self.dir

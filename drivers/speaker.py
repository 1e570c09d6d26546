"""The speaker: a queue of playbacks into an I2S amplifier through a PortAudio-shaped stream.

The stream is opened when a run of playbacks starts and closed when the queue drains,
with the amplifier enabled only in between. Shared stream plumbing lives in audio.py.
"""

import collections
import logging
import threading
from collections.abc import Callable

import numpy as np

from glasses_firmware.drivers.audio import PROBE_S, STALL_TIMEOUT_S, close_stream, open_stream, wait_event
from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import ConfigError, DeviceError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.resample import resample

log = logging.getLogger(__name__)


class Playback:
    """One queued sound; `wait` until played, cut short (`cancelled`) or failed (`error`)."""

    def __init__(self, samples: np.ndarray, rate_hz: int, clock: Clock):
        self._samples = samples
        self._clock = clock
        self.rate_hz = rate_hz
        self.frames = len(samples)
        self.position = 0  # frames handed to the device so far
        self.cancelled = False
        self.error: GlassesError | None = None
        self._done = threading.Event()

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate_hz

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float) -> bool:
        """True once finished (played, cancelled or failed); False if `timeout_s` passed first."""
        return wait_event(self._done, timeout_s, self._clock)

    def _finish(self, cancelled: bool = False, error: GlassesError | None = None) -> None:
        self.cancelled = cancelled
        self.error = error
        self._done.set()


class Speaker:
    """The I2S amplifier: a queue of playbacks, one stream per run of queued sounds.

    The stream opens (amp on) when a run starts and closes (amp off) when the queue
    drains, so the amp draws nothing and hisses not at all while idle.
    """

    def __init__(self, stream_factory: Callable, rate_hz: int = 48000, channels: int = 2,
                 amp_enable=None, volume: float = 0.8, block_frames: int = 960,
                 clock: Clock | None = None, name: str = "speaker",
                 stall_timeout_s: float = STALL_TIMEOUT_S):
        if rate_hz <= 0 or channels < 1 or block_frames < 1:
            raise ConfigError(f"{name}: bad stream {rate_hz} Hz x{channels}, "
                              f"block {block_frames}")
        self.name = name
        self.rate_hz = rate_hz
        self.channels = channels
        self.block_frames = block_frames
        self._factory = stream_factory
        self._amp = amp_enable
        self.stall_timeout_s = stall_timeout_s
        self._clock = clock or Clock()
        self._volume = 0.0
        self.volume = volume
        self._lock = threading.Lock()  # queue and counters, shared with the callback
        self._run_lock = threading.Lock()  # opening/closing runs; never taken by the callback
        self._queue: collections.deque[Playback] = collections.deque()
        self._idle = threading.Event()
        self._idle.set()
        self._stream = None
        self._frames_played = 0
        self._closed = False
        self.underruns = 0
        # The phone's music or call audio reaches the amplifier through bluealsa-aplay, not
        # through this queue; the media service says when, for the power model.
        self.phone_audio = False

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ConfigError(f"{self.name}: volume {value} outside 0..1")
        self._volume = float(value)

    @property
    def is_playing(self) -> bool:
        return not self._idle.is_set()

    def mark_phone_audio(self, playing: bool) -> None:
        self.phone_audio = bool(playing)

    @property
    def streaming(self) -> bool:
        """True while a stream is open (amp on); it closes shortly after the queue drains."""
        return self._stream is not None

    def _prepare(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        x = np.asarray(samples)
        if not np.issubdtype(x.dtype, np.floating):
            raise ConfigError(f"{self.name}: samples must be float in [-1, 1], got {x.dtype}")
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] not in (1, self.channels) and self.channels != 1:
            raise ConfigError(f"{self.name}: cannot play shape {np.shape(samples)} on "
                             f"{self.channels} channel(s)")
        if rate_hz <= 0:
            raise ConfigError(f"{self.name}: bad sample rate {rate_hz}")
        x = np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        if x.shape[1] != self.channels:
            x = x.mean(axis=1, keepdims=True) if self.channels == 1 else x
            x = np.broadcast_to(x, (len(x), self.channels))
        if rate_hz != self.rate_hz:
            x = resample(x, rate_hz, self.rate_hz)
        # Clipping after resampling catches its overshoot too; float never wraps.
        return np.ascontiguousarray(np.clip(x * np.float32(self._volume), -1.0, 1.0))

    def play(self, samples: np.ndarray, rate_hz: int) -> Playback:
        """Queue mono (n,) or (n, channels) float audio at `rate_hz`; plays after earlier ones.

        Raises BusError if the output stream cannot be opened, ValueError for bad audio.
        """
        if self._closed:
            raise DeviceError(f"{self.name}: closed")
        pb = Playback(self._prepare(samples, rate_hz), self.rate_hz, self._clock)
        if pb.frames == 0:
            pb._finish()
            return pb
        with self._run_lock:
            with self._lock:
                self._queue.append(pb)
                self._idle.clear()
            if self._stream is None:
                try:
                    self._open_run()
                except BaseException as e:
                    self._fail_queue(e if isinstance(e, GlassesError) else None)
                    raise
        return pb

    def _fail_queue(self, error: GlassesError | None, cancelled: bool = False) -> None:
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
            self._idle.set()
        for pb in dropped:
            pb._finish(cancelled=cancelled, error=error)

    def _open_run(self) -> None:
        # Caller holds _run_lock. Amp first, so the first samples are not swallowed.
        if self._amp is not None:
            self._amp.on()
        try:
            stream = open_stream(self._factory, self.name, samplerate=self.rate_hz,
                                  channels=self.channels, dtype="float32",
                                  blocksize=self.block_frames, callback=self._callback)
        except BaseException:
            if self._amp is not None:
                self._amp.off()
            raise
        self._stream = stream
        threading.Thread(target=self._watch_run, args=(stream,), daemon=True,
                         name=f"{self.name}-run").start()

    def _end_run(self, stream, drain: bool) -> None:
        # Caller holds _run_lock. `streaming` turns False only once the amp is off.
        try:
            close_stream(stream, self.name, drain)
        finally:
            try:
                if self._amp is not None:
                    self._amp.off()
            finally:
                self._stream = None

    def _watch_run(self, stream) -> None:
        """Close the run's stream once the queue drains, or fail it if the callback stalls."""
        last_played = -1
        while True:
            drained = wait_event(self._idle, self.stall_timeout_s, self._clock)
            with self._lock:
                played = self._frames_played
            if not drained and played != last_played:
                last_played = played
                continue  # still making progress through a long queue
            with self._run_lock:
                if self._stream is not stream:
                    return  # stop() or close() already ended this run
                if drained and not self._idle.is_set():
                    continue  # play() queued more while we took the lock
                if not drained:
                    log.warning("%s: output stalled for %g s; dropping the queue",
                                self.name, self.stall_timeout_s)
                    self._fail_queue(DeviceTimeout(f"{self.name}: output stalled"))
                try:
                    self._end_run(stream, drain=drained)
                except GlassesError as e:  # nobody to raise to in this thread
                    log.warning("%s", e)
                return

    def _callback(self, outdata, frames, time_info, status) -> None:
        # Real-time thread: copy from prepared buffers, pad with silence, nothing else.
        finished = []
        filled = 0
        with self._lock:
            if status and getattr(status, "output_underflow", False):
                self.underruns += 1
            while filled < frames and self._queue:
                pb = self._queue[0]
                n = min(frames - filled, pb.frames - pb.position)
                outdata[filled : filled + n] = pb._samples[pb.position : pb.position + n]
                pb.position += n
                filled += n
                if pb.position >= pb.frames:
                    finished.append(self._queue.popleft())
            self._frames_played += filled
            if not self._queue:
                self._idle.set()
        outdata[filled:] = 0
        for pb in finished:
            pb._finish()

    def stop(self) -> None:
        """Barge-in: drop the queue and cut the current playback now (amp off)."""
        with self._run_lock:
            self._fail_queue(None, cancelled=True)
            stream = self._stream
            if stream is not None:
                self._end_run(stream, drain=False)

    def probe(self, timeout_s: float = 1.0) -> str:
        """Selftest: play 50 ms of silence through the whole path; returns a one-line detail."""
        pb = self.play(np.zeros(round(PROBE_S * self.rate_hz), np.float32), self.rate_hz)
        if not pb.wait(timeout_s):
            raise DeviceTimeout(f"{self.name}: 50 ms of silence did not play within "
                                f"{timeout_s:g} s")
        if pb.error is not None:
            raise pb.error
        amp = "amp switched" if self._amp is not None else "amp always on"
        return f"{self.rate_hz} Hz x{self.channels}, volume {self._volume:.2f}, {amp}"

    def close(self) -> None:
        """Stop and refuse further use; idempotent."""
        if not self._closed:
            self._closed = True
            self.stop()

"""Microphones and speaker on the shared I2S card, behind injected stream factories.

The factories have the keyword signatures of `sounddevice.InputStream` and
`sounddevice.OutputStream`; board bring-up passes those on real boards and the sim
passes `drivers.sim.audio` ones, so this module never imports sounddevice (a CI machine
may lack libportaudio). Stream callbacks only copy; all processing is on the caller's
side. PortAudio and OS errors become `BusError` in `native_errors`, nowhere else.
"""

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np

from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import BusError, ConfigError, DeviceError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.resample import Resampler
from glasses_firmware.drivers.ringbuffer import RingBuffer

log = logging.getLogger(__name__)

SPEECH_RATE_HZ = 16000
# Full scale of each raw sample format, so reads come out in [-1, 1].
SAMPLE_SCALE = {"int16": 2.0**15, "int32": 2.0**31, "float32": 1.0}
LEVEL_FLOOR_DBFS = -120.0
# No acoustic scene near the glasses is this loud (the ICS-43432 reaches 0 dBFS at
# 120 dB SPL); RMS above it means noise on the data line, not sound.
GARBAGE_LEVEL_DBFS = -10.0
PROBE_S = 0.05
# A run with queued audio whose callback makes no progress for this long has stalled
# (default for Speaker's stall_timeout_s).
STALL_TIMEOUT_S = 1.0
# Real-time slice for event waits, so deadlines follow the injected clock.
_POLL_S = 0.02


@contextlib.contextmanager
def native_errors(device: str, action: str) -> Iterator[None]:
    """The one place where PortAudio and OS errors become `BusError` naming the device."""
    try:
        yield
    except GlassesError:
        raise
    except Exception as e:
        # PortAudioError is matched by name: importing sounddevice here is what we avoid.
        if isinstance(e, OSError) or type(e).__name__ == "PortAudioError":
            raise BusError(f"{device}: {action} failed: {e}") from e
        raise


def open_stream(factory: Callable, device: str, **kw):
    """Create and start a stream; on failure close it again and raise BusError."""
    stream = None
    try:
        with native_errors(device, "open stream"):
            stream = factory(**kw)
            stream.start()
        return stream
    except BaseException:
        if stream is not None:
            try:
                stream.close()
            except Exception as e:  # noqa: BLE001 - the first error is the one to raise
                log.warning("%s: close after a failed start also failed: %s", device, e)
        raise


def close_stream(stream, device: str, drain: bool) -> None:
    """Close a stream; `drain` first lets the device play out what it holds (close aborts)."""
    try:
        with native_errors(device, "stop stream"):
            if drain:
                stream.stop()
    finally:
        with native_errors(device, "close stream"):
            stream.close()


def wait_event(event: threading.Event, timeout_s: float, clock: Clock) -> bool:
    """Wait for `event` until `timeout_s` has passed on `clock`; True if it was set."""
    deadline = clock.monotonic() + timeout_s
    while not event.is_set():
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return False
        event.wait(min(remaining, _POLL_S))
    return True


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of float samples in dBFS (full-scale sine is -3 dB), floored at -120."""
    if samples.size == 0:
        return LEVEL_FLOOR_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return max(LEVEL_FLOOR_DBFS, 20 * math.log10(rms) if rms > 0 else LEVEL_FLOOR_DBFS)


class Microphones:
    """The stereo I2S microphones: a ring buffer filled by the stream callback.

    `read` and `read_speech` are for one consumer: both take from the same buffer.
    """

    def __init__(self, stream_factory: Callable, rate_hz: int = 48000, channels: int = 2,
                 block_frames: int = 960, sample_format: str = "int32",
                 buffer_s: float = 10, clock: Clock | None = None, name: str = "microphones"):
        if sample_format not in SAMPLE_SCALE:
            raise ConfigError(f"{name}: sample_format {sample_format!r} not one of "
                              f"{sorted(SAMPLE_SCALE)}")
        if rate_hz <= 0 or channels < 1 or block_frames < 1 or buffer_s <= 0:
            raise ConfigError(f"{name}: bad stream {rate_hz} Hz x{channels}, "
                              f"block {block_frames}, buffer {buffer_s} s")
        self.name = name
        self.rate_hz = rate_hz
        self.channels = channels
        self.block_frames = block_frames
        self.sample_format = sample_format
        self._factory = stream_factory
        self._clock = clock or Clock()
        self._scale = np.float32(1.0 / SAMPLE_SCALE[sample_format])
        # Mixing to mono is a matrix-vector product: 30x faster than mean(axis=1).
        self._mono_weights = np.full(channels, self._scale / channels, np.float32)
        self._ring = RingBuffer(max(block_frames, round(buffer_s * rate_hz)), channels,
                                np.dtype(sample_format))
        self._speech = Resampler(rate_hz, SPEECH_RATE_HZ, 1)
        self._speech_left = np.zeros(0, np.float32)
        self._lock = threading.Lock()  # start/stop/close; never taken by the callback
        self._stream = None
        self._closed = False
        self._device_overflows = 0

    @property
    def running(self) -> bool:
        return self._stream is not None

    @property
    def overruns(self) -> int:
        """Lost audio: ring buffer overflows plus overflows the device reported."""
        return self._ring.overruns + self._device_overflows

    def _callback(self, indata, frames, time_info, status) -> None:
        # Real-time thread: copy and count, nothing else.
        if status and getattr(status, "input_overflow", False):
            self._device_overflows += 1
        self._ring.write(indata)

    def start(self) -> None:
        """Open and start the input stream (no-op if running); BusError if the device fails."""
        with self._lock:
            if self._closed:
                raise DeviceError(f"{self.name}: closed")
            if self._stream is not None:
                return
            # A new stream is a gap in the audio: stale frames and filter history go
            # now, before the first callback can deliver fresh ones.
            self._ring.clear()
            self._speech.reset()
            self._speech_left = np.zeros(0, np.float32)
            self._stream = open_stream(
                self._factory, self.name, samplerate=self.rate_hz, channels=self.channels,
                dtype=self.sample_format, blocksize=self.block_frames, callback=self._callback)

    def stop(self) -> None:
        """Stop and close the stream (no-op if stopped)."""
        with self._lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                close_stream(stream, self.name, drain=True)

    def close(self) -> None:
        """Stop and refuse further use; idempotent."""
        self.stop()
        self._closed = True

    def _wait_ring(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        # Short real-time slices, so the deadline follows the injected clock.
        deadline = self._clock.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return False
            self._ring.wait_for(predicate, min(remaining, _POLL_S))
        return True

    def _wait_frames(self, frames: int, timeout_s: float) -> None:
        if not self.running:
            raise DeviceError(f"{self.name}: not started")
        if frames > self._ring.capacity_frames:
            raise ConfigError(f"{self.name}: {frames} frames exceed the "
                             f"{self._ring.capacity_frames}-frame buffer")
        if not self._wait_ring(lambda: self._ring.available >= frames, timeout_s):
            raise DeviceTimeout(
                f"{self.name}: only {self._ring.available} of {frames} frames "
                f"arrived within {max(0.0, timeout_s):g} s (no audio from the I2S card?)")

    def read(self, frames: int, timeout_s: float) -> np.ndarray:
        """Next `frames` frames as float32 (frames, channels) in [-1, 1].

        Raises DeviceTimeout if they do not arrive within `timeout_s`; nothing is consumed then.
        """
        self._wait_frames(frames, timeout_s)
        return self._ring.read(frames).astype(np.float32) * self._scale

    def read_speech(self, samples: int, timeout_s: float) -> np.ndarray:
        """Next `samples` of 16 kHz mono float32 (channel average), for VAD, wake word and STT."""
        deadline = self._clock.monotonic() + timeout_s
        out = [self._speech_left]
        have = len(self._speech_left)
        while have < samples:
            # Whole blocks at a time: fewer, larger resampler calls are much cheaper.
            need = self._speech.frames_needed(samples - have)
            need = min(self._ring.capacity_frames,
                       -(-need // self.block_frames) * self.block_frames)
            try:
                self._wait_frames(need, deadline - self._clock.monotonic())
            except DeviceTimeout:
                self._speech_left = np.concatenate(out)
                raise
            # Take whatever else is waiting too: a reader that fell behind catches up
            # in one call instead of many small ones.
            take = min(max(need, self._ring.available), self._ring.capacity_frames)
            mono = self._ring.read(take).astype(np.float32) @ self._mono_weights
            chunk = self._speech.process(mono)
            out.append(chunk)
            have += len(chunk)
        speech = np.concatenate(out)
        self._speech_left = speech[samples:]
        return speech[:samples]

    def read_speech_available(self) -> np.ndarray:
        """All buffered audio as 16 kHz mono float32, without waiting (may be empty).

        For readers that poll on the firmware's own clock instead of blocking a thread.
        """
        out = [self._speech_left]
        self._speech_left = self._speech_left[:0]
        take = min(self._ring.available, self._ring.capacity_frames)
        if take:
            mono = self._ring.read(take).astype(np.float32) @ self._mono_weights
            out.append(self._speech.process(mono))
        return np.concatenate(out)

    def level_dbfs(self, window_s: float = 0.1) -> float:
        """RMS level of the newest `window_s` of audio (read or not), floored at -120 dBFS."""
        raw = self._ring.latest(max(1, round(window_s * self.rate_hz)))
        return level_dbfs(raw.astype(np.float32) * self._scale)

    def probe(self, timeout_s: float = 1.0) -> str:
        """Selftest: start if needed, wait for 50 ms of fresh audio, check it is plausible.

        Returns e.g. "48000 Hz x2, level -90.0 dBFS"; raises a GlassesError with the reason.
        Consumes nothing, so a running voice pipeline loses no audio.
        """
        was_running = self.running
        self.start()
        try:
            frames = round(PROBE_S * self.rate_hz)
            target = self._ring.frames_written + frames
            if not self._wait_ring(lambda: self._ring.frames_written >= target, timeout_s):
                raise DeviceTimeout(f"{self.name}: no audio within {timeout_s:g} s")
            raw = self._ring.latest(frames)
        finally:
            if not was_running:
                self.stop()  # a selftest must not leave the microphones powered
        if not raw.any():
            raise DeviceError(f"{self.name}: all samples are zero (mic unpowered or "
                              f"wrong I2S slot?)")
        level = level_dbfs(raw.astype(np.float32) * self._scale)
        if level > GARBAGE_LEVEL_DBFS:
            raise DeviceError(f"{self.name}: implausible level {level:.1f} dBFS "
                              f"(noise on the I2S data line?)")
        return f"{self.rate_hz} Hz x{self.channels}, level {level:.1f} dBFS"

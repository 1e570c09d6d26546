"""Sim microphones and speaker behind sounddevice's InputStream/OutputStream signatures.

Streams run a daemon thread paced by the injected clock and call the driver's callback
exactly as PortAudio would, so `drivers.audio` runs unchanged. The microphone side plays
queued sounds over a -90 dBFS noise floor (an ICS-43432 is never digitally silent); the
speaker side records every run to `<speaker_dir>/NNNN.wav`.
"""

import errno
import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import ConfigError, DeviceTimeout
from glasses_firmware.drivers.resample import resample
from glasses_firmware.drivers.wavio import read_wav, wav_bytes  # noqa: F401 (re-exported for the sim's users)

log = logging.getLogger(__name__)

FAULTS = (None, "gone", "timeout", "garbage")
# PortAudio's default when blocksize=0 lets it choose; 10 ms keeps callbacks frequent.
DEFAULT_BLOCK_S = 0.01
# Falling further behind than this (e.g. after SimClock.advance) skips ahead and reports
# an input overflow, as a real card does when nobody services it.
MAX_CATCH_UP_S = 0.5
JOIN_TIMEOUT_S = 2.0
# What the sim microphones accept: a header can claim any rate, and 2000 frames "at 1 Hz"
# resampled to 48 kHz are 2000 s (3 GB as float32); queued sound is held in memory.
PLAY_RATES_HZ = (8000, 192000)
MAX_QUEUED_S = 600.0
_SCALE = {"int16": 2.0**15, "int32": 2.0**31, "float32": 1.0}
_PLAYED = re.compile(r"^(\d{4})\.wav$")
_counter_lock = threading.Lock()


@dataclass
class SimCallbackFlags:
    """Stand-in for sounddevice.CallbackFlags: the two flags the drivers look at."""

    input_overflow: bool = False
    output_underflow: bool = False

    def __bool__(self) -> bool:
        return self.input_overflow or self.output_underflow


def list_played(speaker_dir: str | Path) -> list[Path]:
    """The WAVs the sim speaker has written, oldest first."""
    d = Path(speaker_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _PLAYED.match(p.name))


class SimAudioSource:
    """What the sim microphones hear: queued sounds over a noise floor, or a fault."""

    def __init__(self, clock: Clock, rate_hz: int = 48000, channels: int = 2,
                 noise_dbfs: float = -90.0, seed: int = 0):
        self.clock = clock
        self.rate_hz = rate_hz
        self.channels = channels
        self._noise_rms = 10 ** (noise_dbfs / 20)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._queue: deque[np.ndarray] = deque()
        self._fault: str | None = None

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value not in FAULTS:
            raise ConfigError(f"sim microphones: fault {value!r} not one of {FAULTS}")
        self._fault = value

    @property
    def busy(self) -> bool:
        """True while queued sound remains to be heard."""
        with self._lock:
            return bool(self._queue)

    def play_wav(self, path: str | Path) -> float:
        """Queue a 16-bit PCM WAV (any rate, mono or stereo); returns its duration in s."""
        samples, rate_hz = read_wav(path)
        return self.play_samples(samples, rate_hz)

    def play_samples(self, samples: np.ndarray, rate_hz: int) -> float:
        """Queue float audio, (n,) or (n, channels) in [-1, 1] at `rate_hz`; returns seconds."""
        x = np.asarray(samples, np.float32)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2 or x.shape[1] not in (1, self.channels):
            raise ConfigError(f"sim microphones: cannot hear shape {np.shape(samples)}")
        if not len(x):
            raise ConfigError("sim microphones: the audio has no frames; give audio with sound in it")
        lo, hi = PLAY_RATES_HZ
        if not lo <= rate_hz <= hi:
            raise ConfigError(f"sim microphones: {rate_hz} Hz audio; give {lo} to {hi} Hz")
        queued_s = self.queued_s()
        if queued_s + len(x) / rate_hz > MAX_QUEUED_S:
            raise ConfigError(f"sim microphones: {len(x) / rate_hz:.1f} s more would exceed "
                             f"{MAX_QUEUED_S:g} s of queued sound ({queued_s:.1f} s waiting); "
                             "play shorter audio or wait until it has been heard")
        if rate_hz != self.rate_hz:
            x = resample(x, rate_hz, self.rate_hz)
        x = np.ascontiguousarray(np.broadcast_to(x, (len(x), self.channels)))
        with self._lock:
            self._queue.append(x)
        return len(x) / self.rate_hz

    def queued_s(self) -> float:
        """Seconds of sound queued and not yet heard."""
        with self._lock:
            return sum(len(x) for x in self._queue) / self.rate_hz

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def next_block(self, frames: int) -> np.ndarray:
        """The next `frames` frames the microphones hear, float32 (frames, channels)."""
        if self._fault == "garbage":
            return self._rng.uniform(-1.0, 1.0, (frames, self.channels)).astype(np.float32)
        out = self._rng.normal(0.0, self._noise_rms, (frames, self.channels)).astype(np.float32)
        self._take(frames, out)
        return out

    def skip(self, frames: int) -> None:
        """Let `frames` of queued sound pass unheard (the card overflowed)."""
        self._take(frames, None)

    def _take(self, frames: int, out: np.ndarray | None) -> None:
        filled = 0
        with self._lock:
            while filled < frames and self._queue:
                head = self._queue[0]
                n = min(frames - filled, len(head))
                if out is not None:
                    out[filled : filled + n] += head[:n]
                filled += n
                if n == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[n:]


class _PacedStream:
    """A thread calling `_tick` once per block, paced by the clock, until stopped."""

    def __init__(self, clock: Clock, samplerate: float, channels: int, blocksize: int | None,
                 callback, kind: str):
        self.clock = clock
        self.samplerate = int(samplerate)
        self.channels = channels
        self.blocksize = blocksize or round(DEFAULT_BLOCK_S * self.samplerate)
        self.callback = callback
        self.kind = kind
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed = False

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, f"sim {self.kind} stream is closed")
        if self.active:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"sim-{self.kind}-stream")
        self._thread.start()

    def _run(self) -> None:
        block_s = self.blocksize / self.samplerate
        next_t = self.clock.monotonic()
        try:
            while not self._stop.is_set():
                behind_s = self.clock.monotonic() - next_t
                skipped = 0
                if behind_s > MAX_CATCH_UP_S:
                    skipped = int(behind_s / block_s) * self.blocksize
                    next_t += skipped / self.samplerate
                self._tick(skipped)
                next_t += block_s
                # Sleeping to an absolute schedule keeps the long-run rate exact.
                if not self.clock.sleep(next_t - self.clock.monotonic(), self._stop):
                    break
        except Exception:
            # PortAudio aborts a stream whose callback raises; so do we, loudly.
            log.exception("sim %s stream: callback failed; stream aborted", self.kind)

    def _tick(self, skipped_frames: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the thread; DeviceTimeout if it does not end within JOIN_TIMEOUT_S."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(JOIN_TIMEOUT_S)
            if t.is_alive():
                raise DeviceTimeout(f"sim {self.kind} stream thread did not stop within "
                                    f"{JOIN_TIMEOUT_S:g} s")
        self._thread = None

    def close(self) -> None:
        if not self.closed:
            self.stop()
            self.closed = True


class SimInputStream(_PacedStream):
    """sounddevice.InputStream look-alike fed by a SimAudioSource."""

    def __init__(self, source: SimAudioSource, clock: Clock, samplerate: float, channels: int,
                 dtype: str = "float32", blocksize: int | None = None, callback=None,
                 **ignored):
        if int(samplerate) != source.rate_hz:
            raise OSError(errno.EINVAL, f"Invalid sample rate {samplerate} "
                                        f"(sim card runs at {source.rate_hz} Hz)")
        if channels > source.channels:
            raise OSError(errno.EINVAL, f"Invalid number of channels {channels} "
                                        f"(sim card has {source.channels})")
        if dtype not in _SCALE:
            raise OSError(errno.EINVAL, f"Invalid sample format {dtype!r}")
        super().__init__(clock, samplerate, channels, blocksize, callback, "input")
        self.source = source
        self.dtype = dtype

    def start(self) -> None:
        if self.source.fault == "gone":
            raise OSError(errno.ENODEV, "Device unavailable [PaErrorCode -9985]")
        super().start()

    def _tick(self, skipped_frames: int) -> None:
        if skipped_frames:
            self.source.skip(skipped_frames)
        if self.source.fault in ("gone", "timeout"):
            return  # the card stops clocking: no callbacks at all
        x = self.source.next_block(self.blocksize)[:, : self.channels]
        if self.dtype != "float32":
            full = _SCALE[self.dtype]
            x = np.clip(np.round(x.astype(np.float64) * full), -full, full - 1)
        indata = np.ascontiguousarray(x, self.dtype)
        flags = SimCallbackFlags(input_overflow=bool(skipped_frames))
        self.callback(indata, self.blocksize, None, flags)


class SimOutputStream(_PacedStream):
    """sounddevice.OutputStream look-alike; each start()..stop() run becomes NNNN.wav."""

    def __init__(self, speaker_dir: str | Path, clock: Clock, samplerate: float,
                 channels: int, dtype: str = "float32", blocksize: int | None = None,
                 callback=None, **ignored):
        if dtype != "float32":
            raise OSError(errno.EINVAL, f"sim speaker supports float32 only, not {dtype!r}")
        super().__init__(clock, samplerate, channels, blocksize, callback, "output")
        self.speaker_dir = Path(speaker_dir)
        self._blocks: list[np.ndarray] = []
        self._recording = False
        self.last_path: Path | None = None

    def start(self) -> None:
        if not self.active:
            self._blocks = []
            self._recording = True
        super().start()

    def _tick(self, skipped_frames: int) -> None:
        outdata = np.zeros((self.blocksize, self.channels), np.float32)
        self.callback(outdata, self.blocksize, None, SimCallbackFlags())
        self._blocks.append(outdata.copy())

    def stop(self) -> None:
        super().stop()
        if self._recording:
            self._recording = False
            self._save()

    def _save(self) -> None:
        audio = (np.concatenate(self._blocks) if self._blocks
                 else np.zeros((0, self.channels), np.float32))
        data = wav_bytes(audio, self.samplerate)
        with _counter_lock:  # two runs must never pick the same number
            played = list_played(self.speaker_dir)
            number = int(played[-1].name[:4]) + 1 if played else 1
            self.last_path = write_atomic(self.speaker_dir / f"{number:04d}.wav", data)


def sim_input_stream_factory(source: SimAudioSource, clock: Clock):
    """A callable with sounddevice.InputStream's keywords, opening SimInputStreams on `source`."""

    def factory(*, samplerate, channels, dtype="float32", blocksize=None, callback=None,
                **ignored) -> SimInputStream:
        return SimInputStream(source, clock, samplerate, channels, dtype, blocksize, callback)

    return factory


def sim_output_stream_factory(speaker_dir: str | Path, clock: Clock):
    """A callable with sounddevice.OutputStream's keywords, recording runs into `speaker_dir`."""

    def factory(*, samplerate, channels, dtype="float32", blocksize=None, callback=None,
                **ignored) -> SimOutputStream:
        return SimOutputStream(speaker_dir, clock, samplerate, channels, dtype, blocksize,
                               callback)

    return factory

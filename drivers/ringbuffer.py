"""A preallocated, thread-safe frame ring between an audio callback and its reader.

The writer is a real-time audio callback, so `write` never blocks on the reader and
never allocates: when the reader falls behind, the oldest frames are overwritten, the
way a microphone's hardware FIFO behaves, and the loss is counted.
"""

import threading
from collections.abc import Callable

import numpy as np


class RingBuffer:
    """Fixed-size (capacity_frames, channels) ring; overflow drops the oldest frames."""

    def __init__(self, capacity_frames: int, channels: int, dtype=np.float32):
        if capacity_frames < 1 or channels < 1:
            raise ValueError(f"ring buffer needs >= 1 frame and channel, got "
                             f"{capacity_frames} x {channels}")
        self._data = np.zeros((capacity_frames, channels), dtype)
        # Absolute frame counters; positions in _data are counter % capacity.
        self._written = 0
        self._read = 0
        self._overruns = 0
        self._dropped_frames = 0
        self._cond = threading.Condition()  # RLock inside: predicates may use properties

    @property
    def capacity_frames(self) -> int:
        return len(self._data)

    @property
    def channels(self) -> int:
        return self._data.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def available(self) -> int:
        """Frames written but not yet read."""
        with self._cond:
            return self._written - self._read

    @property
    def frames_written(self) -> int:
        """All frames ever written, including dropped ones."""
        with self._cond:
            return self._written

    @property
    def overruns(self) -> int:
        """Writes that had to drop unread frames."""
        with self._cond:
            return self._overruns

    @property
    def dropped_frames(self) -> int:
        with self._cond:
            return self._dropped_frames

    def write(self, block: np.ndarray) -> None:
        """Copy (n, channels) frames in (1-D if mono); never blocks, drops oldest on overflow."""
        block = np.asarray(block)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected (n, {self.channels}) frames, got {block.shape}")
        n = len(block)
        cap = self.capacity_frames
        with self._cond:
            start = self._written
            if n > cap:  # only the newest `cap` frames can survive anyway
                start += n - cap
                block = block[n - cap :]
            self._copy_in(start % cap, block)
            self._written += n
            unread = self._written - self._read
            if unread > cap:
                self._overruns += 1
                self._dropped_frames += unread - cap
                self._read = self._written - cap
            self._cond.notify_all()

    def _copy_in(self, pos: int, block: np.ndarray) -> None:
        first = min(len(block), self.capacity_frames - pos)
        self._data[pos : pos + first] = block[:first]
        self._data[: len(block) - first] = block[first:]

    def _copy_out(self, start: int, n: int) -> np.ndarray:
        pos = start % self.capacity_frames
        first = min(n, self.capacity_frames - pos)
        return np.concatenate([self._data[pos : pos + first], self._data[: n - first]])

    def read(self, n: int) -> np.ndarray:
        """Take up to `n` of the oldest unread frames, as a (k, channels) copy; k <= n."""
        with self._cond:
            k = max(0, min(n, self._written - self._read))
            out = self._copy_out(self._read, k)
            self._read += k
            return out

    def latest(self, n: int) -> np.ndarray:
        """Copy of the newest `n` frames (fewer if not yet written); consumes nothing."""
        with self._cond:
            k = max(0, min(n, self._written, self.capacity_frames))
            return self._copy_out(self._written - k, k)

    def clear(self) -> None:
        """Discard unread frames (counters keep counting)."""
        with self._cond:
            self._read = self._written

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Wait up to `timeout_s` (real time) for `predicate()` to hold after some write."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout=max(0.0, timeout_s))

"""Checks on camera frames that need no camera: which stream sizes YUV420 can hold, and
whether a luma frame shows a scene or the noise of a corrupted CSI link.

Plain numpy, apart from the driver's threads and deadlines, so they are tested directly.
"""

import numpy as np

from glasses_firmware.drivers.errors import ConfigError


def check_size(name: str, size) -> tuple[int, int]:
    """`size` as (width, height) ints; ConfigError naming `name` unless both are positive and even."""
    w, h = (int(v) for v in size)
    # YUV420 halves both axes for chroma, so odd sizes cannot be represented.
    if w <= 0 or h <= 0 or w % 2 or h % 2:
        raise ConfigError(f"camera {name}={size}: width and height must be positive and even")
    return w, h


def looks_like_noise(luma: np.ndarray) -> bool:
    """True when a luma frame has no spatial correlation (a corrupted CSI link, not a scene)."""
    y = luma[::4].astype(np.float32)  # every 4th row is plenty and keeps this ~1 ms
    std = float(y.std())
    if std < 8.0:
        return False  # flat frames (lens cap, dark room) are real scenes
    # Neighbouring pixels of any real image are close; for independent noise the mean
    # absolute difference is about 1.13 std.
    return float(np.abs(np.diff(y, axis=1)).mean()) > 0.8 * std

"""What the camera driver hands out and keeps track of: stills, photos and a video in progress.

A `Still` is a JPEG in memory that a caller (the privacy interlock) may still discard; a
`Photo` is a still once written; a `Recording` is the driver's record of the video being
made. They are plain values with no camera in them, kept apart so that drivers/camera.py
holds only the driver.
"""

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.atomic import write_atomic


@dataclass(frozen=True)
class Still:
    """A captured JPEG still, not yet written anywhere (so a caller can still discard it)."""

    jpeg: bytes
    size: tuple[int, int]
    sensor_timestamp_ns: int
    wall_s: float

    def save(self, path: str | os.PathLike) -> "Photo":
        """Write the JPEG atomically to `path`."""
        return Photo(write_atomic(path, self.jpeg), self)


@dataclass(frozen=True)
class Photo:
    """A saved still: where it is, and the still (size in pixels, when it was captured)."""

    path: Path
    still: Still

    @property
    def size(self) -> tuple[int, int]:
        return self.still.size

    @property
    def wall_s(self) -> float:
        return self.still.wall_s

    @property
    def sensor_timestamp_ns(self) -> int:
        return self.still.sensor_timestamp_ns


@dataclass
class Recording:
    """A video being recorded: its final path, the hidden temp file the encoder writes, its stop."""

    path: Path
    tmp_path: Path
    max_duration_s: float
    stop: threading.Event
    timer: threading.Thread | None = None
    frame_filter: object = None
    filter_failed: bool = False

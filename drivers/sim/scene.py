"""What the sim camera sees: a test pattern, an image file, or a folder of images.

A Scene renders RGB frames for any stream size at a clock time and frame number, so the
sim camera (drivers/sim/camera.py) can lay them out as any stream format; the pattern
draws its own frame number and a moving block, so consecutive frames differ and a test
can tell them apart. `noise_frame` is what the sim camera's garbage fault sends instead.
"""

import os
from pathlib import Path

import numpy as np
from PIL import Image

from glasses_firmware.drivers.errors import ConfigError

# A scene picture is decoded whole into RGB; past this a header alone (a 20000x20000 PNG
# of a few hundred bytes) would cost gigabytes. 64 MP is 5x the IMX708's full frame.
MAX_SCENE_PIXELS = 64_000_000

_BARS_RGB = np.array([(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
                      (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0)], np.uint8)
# A 3x5 bitmap font for the frame number, so the pattern needs no font files.
_GLYPHS = {str(d): np.array([[c == "1" for c in row] for row in rows.split()], bool)
           for d, rows in enumerate(["111 101 101 101 111", "010 110 010 010 111",
                                     "111 001 111 100 111", "111 001 111 001 111",
                                     "101 101 111 001 001", "111 100 111 001 111",
                                     "111 100 111 101 111", "111 001 001 001 001",
                                     "111 101 111 101 111", "111 101 111 001 111"])}


def noise_frame(size, frame_no: int) -> np.ndarray:
    """Random RGB noise, seeded by the frame number so the garbage fault is reproducible."""
    w, h = size
    return np.random.default_rng(frame_no).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _draw_number(img: np.ndarray, number: int, scale: int) -> None:
    text = str(number)
    x0 = y0 = scale
    img[y0 - scale // 2:y0 + 5 * scale + scale // 2, x0 - scale // 2:x0 + 4 * scale * len(text)] = 0
    for i, ch in enumerate(text):
        big = np.kron(_GLYPHS[ch], np.ones((scale, scale), bool))
        x = x0 + 4 * scale * i
        sub = img[y0:y0 + big.shape[0], x:x + big.shape[1]]
        sub[big[:sub.shape[0], :sub.shape[1]]] = 255


class _Pattern:
    spec = "pattern"

    def __init__(self):
        self._bars = {}

    def render(self, size, t_s, frame_no):
        w, h = size
        base = self._bars.get(size)
        if base is None:
            base = np.zeros((h, w, 3), np.uint8)
            base[:h * 2 // 3] = _BARS_RGB[(np.arange(w) * len(_BARS_RGB)) // w]
            self._bars[size] = base
        img = base.copy()
        block = max(2, w // 16)
        x = (frame_no * max(1, w // 60)) % (w - block + 1)  # crosses the frame in ~2 s at 30 fps
        img[h * 2 // 3 + h // 12:h - h // 12, x:x + block] = 255
        _draw_number(img, frame_no, max(1, h // 40))
        return img


class _Picture:
    def __init__(self, path: Path, decode: bool):
        self.spec = str(path)
        self._path = path
        self._image = None
        self._cache = {}
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_SCENE_PIXELS:
                    raise ConfigError(f"sim scene {path}: {im.width}x{im.height} pixels is more "
                                      f"than {MAX_SCENE_PIXELS // 1_000_000} MP; give a smaller image")
                if decode:
                    self._image = im.convert("RGB")
                else:
                    im.verify()  # headers only: a folder of photos is checked without decoding all
        except ConfigError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ConfigError(f"sim scene {path}: not a readable image ({exc})") from exc

    def render(self, size, t_s, frame_no):
        arr = self._cache.get(size)
        if arr is None:
            if self._image is None:
                self._image = _Picture(self._path, decode=True)._image
            arr = np.asarray(self._image.resize(size, Image.BILINEAR), np.uint8)
            self._cache[size] = arr
        return arr.copy()

    def drop(self):
        self._cache = {}
        self._image = None


class _Folder:
    def __init__(self, path: Path):
        self.spec = str(path)
        exts = Image.registered_extensions()
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise ConfigError(f"sim scene {path}: folder has no image files")
        self._pictures = [_Picture(p, decode=False) for p in files]
        self._current = None

    def render(self, size, t_s, frame_no):
        i = int(t_s) % len(self._pictures)
        if self._current is not None and self._current != i:
            self._pictures[self._current].drop()  # keep one decoded photo, not the whole folder
        self._current = i
        return self._pictures[i].render(size, t_s, frame_no)


def _open_source(spec):
    if str(spec) == "pattern":
        return _Pattern()
    path = Path(spec)
    if path.is_dir():
        return _Folder(path)
    if not path.exists():
        raise ConfigError(f"sim scene {path}: no such file or folder "
                          "(give 'pattern', an image file or a folder of images)")
    if not path.is_file():
        # Opening a FIFO blocks until a writer comes, and a device never ends: both would
        # stall the console (and the loop it runs on) for good.
        raise ConfigError(f"sim scene {path}: not a regular file or folder "
                          "(give 'pattern', an image file or a folder of images)")
    return _Picture(path, decode=True)


class Scene:
    """What the sim camera sees: "pattern", an image file, or a folder of images (one per second)."""

    def __init__(self, spec: str | os.PathLike = "pattern"):
        self._source = _open_source(spec)

    @classmethod
    def parse(cls, spec: str | os.PathLike) -> "Scene":
        """A Scene from a spec; ConfigError naming the path when it is missing or unreadable."""
        return cls(spec)

    @property
    def spec(self) -> str:
        return self._source.spec

    def set(self, spec: str | os.PathLike) -> None:
        """Switch what the camera sees; a bad spec raises ConfigError and keeps the old scene."""
        self._source = _open_source(spec)

    def render(self, size, t_s: float, frame_no: int) -> np.ndarray:
        """RGB uint8 HxWx3 for size (w, h) at clock time t_s; the pattern depends only on frame_no."""
        return self._source.render(tuple(int(v) for v in size), t_s, frame_no)

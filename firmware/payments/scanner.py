"""Codes in view: QR codes and product barcodes, read by zxing-cpp from lores frames.

Frames come through the capture service (the Frames port), so the camera runs only with
the privacy LED lit and read back, exactly as for a photo, and nothing is saved. A
payment is never decided on one frame: the scanner keeps looking until codes were seen
in frames at least SPAN_S apart (or the time is up), keeps any frame whose codes differ
from the last sighting, and hands every sighting to the payment flow, which refuses when they disagree: a code swapped, covered or animated
while the wearer looked. A second is what it takes to hold a code steady anyway.
"""

from dataclasses import dataclass
from typing import Callable

import numpy as np
import zxingcpp

from ..ports import Blocking, Clock, Frames

# What merchants and shops show: QR codes (payments, links) and retail product codes.
# A tuple: zxing-cpp 3 deprecates or-ing formats together.
FORMATS = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode,
           zxingcpp.BarcodeFormat.EAN13, zxingcpp.BarcodeFormat.EAN8,
           zxingcpp.BarcodeFormat.UPCA, zxingcpp.BarcodeFormat.UPCE)
# zxing's format names, as the payload parser (payloads.py) spells them.
SYMBOLOGY = {"QRCode": "QRCode", "MicroQRCode": "QRCode", "EAN13": "EAN-13", "EAN8": "EAN-8",
             "UPCA": "UPC-A", "UPCE": "UPC-E"}
SIGHTINGS = 2              # frames that must show the codes before anything is decided...
SPAN_S = 1.0               # ...the first and the last at least this far apart
LOOK_S = 4.0               # how long to look for a code before saying there is none
MAX_CODES = 4              # more codes than this in one frame is not a till, it is a wall


@dataclass(frozen=True)
class Code:
    text: str
    symbology: str          # "QRCode", "EAN-13", "EAN-8", "UPC-A", "UPC-E"
    box: tuple[int, int, int, int]    # left, top, right, bottom in the frame


@dataclass(frozen=True)
class Look:
    sightings: tuple[tuple[Code, ...], ...]     # the codes of each frame that had any
    frames: int                                 # frames looked at
    seconds: float
    decode_seconds: float                       # of which zxing

    @property
    def codes(self) -> tuple[Code, ...]:
        """The codes of the last sighting (what is in view now)."""
        return self.sightings[-1] if self.sightings else ()


def decode(luma: np.ndarray) -> tuple[Code, ...]:
    """The codes in one luma frame, top to bottom (blocking: zxing takes a few ms)."""
    found = zxingcpp.read_barcodes(np.ascontiguousarray(luma), formats=FORMATS,
                                   text_mode=zxingcpp.TextMode.Plain)
    codes = []
    for item in found[:MAX_CODES + 1]:
        if not item.valid:
            continue
        p = item.position
        xs = [p.top_left.x, p.top_right.x, p.bottom_left.x, p.bottom_right.x]
        ys = [p.top_left.y, p.top_right.y, p.bottom_left.y, p.bottom_right.y]
        codes.append(Code(item.text, SYMBOLOGY.get(item.format.name, item.format.name),
                          (min(xs), min(ys), max(xs), max(ys))))
    return tuple(sorted(codes, key=lambda c: (c.box[1], c.box[0])))


class Scanner:
    """`look()`: frames until codes were seen `sightings` times over SPAN_S, or LOOK_S passed."""

    def __init__(self, frames: Frames, blocking: Blocking, clock: Clock, look_s: float = LOOK_S,
                 sightings: int = SIGHTINGS, span_s: float = SPAN_S):
        self.frames, self.blocking, self.clock = frames, blocking, clock
        self.look_s, self.sightings, self.span_s = look_s, sightings, span_s

    async def look(self, sightings: int | None = None, owner: str = "assistant",
                   enough: Callable[[tuple[Code, ...]], bool] | None = None) -> Look:
        """CaptureRefused (from the capture service) when the camera may not run now.
        `sightings=1`: the first frame with a code is enough (to read one, not to pay);
        `enough(codes)` True ends the look at once (a code already refused needs no
        second frame)."""
        want = self.sightings if sightings is None else sightings
        t0 = self.clock.monotonic()
        seen: list[tuple[Code, ...]] = []
        first_at = None
        frames, decode_s = 0, 0.0
        async with self.frames.looking(owner) as next_frame:
            while True:
                now = self.clock.monotonic()
                if frames and now - t0 > self.look_s:
                    break
                luma = await next_frame()
                frames += 1
                t1 = self.clock.monotonic()
                codes = await self.blocking.run(decode, luma)
                decode_s += self.clock.monotonic() - t1
                if not codes:
                    continue
                if first_at is None:
                    first_at = now
                # A code that changed is kept whenever it shows: a swap between the first
                # and the SPAN_S-later sighting would otherwise go unseen.
                changed = bool(seen) and _texts(codes) != _texts(seen[-1])
                if len(seen) + 1 < want or now - first_at >= self.span_s or want == 1 or changed:
                    seen.append(codes)
                if len(seen) >= want or (enough is not None and enough(codes)):
                    break
        return Look(tuple(seen), frames, self.clock.monotonic() - t0, decode_s)


def _texts(codes: tuple[Code, ...]) -> tuple[str, ...]:
    return tuple(c.text for c in codes)     # not the boxes: they move a little every frame

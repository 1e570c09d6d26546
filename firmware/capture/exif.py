"""EXIF time for photos, spliced into the camera's JPEG without re-encoding it."""

import struct
import time

from PIL import Image

TAG_DATETIME = 0x0132
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_SUBSEC_ORIGINAL = 0x9291
TAG_MAKE, TAG_MODEL = 0x010F, 0x0110


def with_exif_time(jpeg: bytes, wall_s: float, model: str = "") -> bytes:
    """Return `jpeg` with an APP1 EXIF segment holding `wall_s` as local capture time."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    stamp = time.strftime("%Y:%m:%d %H:%M:%S", time.localtime(wall_s))
    exif = Image.Exif()
    exif[TAG_DATETIME] = stamp
    exif[TAG_MAKE] = "open-glasses"
    if model:
        exif[TAG_MODEL] = model
    sub = exif.get_ifd(TAG_EXIF_IFD)
    sub[TAG_DATETIME_ORIGINAL] = stamp
    sub[TAG_SUBSEC_ORIGINAL] = f"{int(wall_s * 1000) % 1000:03d}"
    payload = exif.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def photo_name(wall_s: float) -> str:
    """Sortable, unique to the millisecond: 20261129-070102-345.jpg."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(wall_s)) + f"-{int(wall_s * 1000) % 1000:03d}"

"""MP4 files: is this one whole (playable), and how much media does it hold.

The camera driver asks before it renames a video into place, so the data directory
never shows an MP4 a player cannot open. Only the top-level boxes are read.
"""

import os
import struct


def mp4_media_bytes(path: str | os.PathLike) -> int | None:
    """Bytes of media (mdat payload) in a finished MP4; None when the file is not a whole MP4.

    Whole: the top-level boxes tile the file exactly and include ftyp, moov and mdat. A
    muxer writes the moov box (the index a player needs) only when it is stopped cleanly,
    so a file cut short by a crash or a kill is not whole. A whole file with no media
    bytes holds no frames.
    """
    seen, media = set(), 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head[:8])
            header = 8
            if length == 1:      # a 64-bit size follows the type
                if len(head) < 16:
                    return None
                length, header = struct.unpack(">Q", head[8:16])[0], 16
            elif length == 0:    # "to the end of the file": an mdat whose size was never patched
                length = size - pos
            if length < header:
                return None
            seen.add(kind)
            if kind == b"mdat":
                media += length - header
            pos += length
    return media if pos == size and {b"ftyp", b"moov", b"mdat"} <= seen else None

"""Block maps (bmap 2.0, the format bmaptool reads) from the image's data regions, and the sha256.

The mapped blocks are what the filesystems use (the ext4 block bitmap, the FAT's
cluster chain), not the holes of the image file: zeros that matter, like an empty FAT,
must be written too. Each range carries its sha256, so a writer that skips the rest
still checks every byte it wrote.
"""

import hashlib
import os
import re

from . import extfs, fatfs
from .disk import BLOCK, CHUNK
from .tools import Progress

_CHECKSUM_FIELD = re.compile(r"(<BmapFileChecksum>\s*)([0-9a-f]{64})(\s*</BmapFileChecksum>)")


def image_blocks(img, boot, root) -> list[tuple[int, int]]:
    """Inclusive 4 KiB block ranges that matter: the MBR and gap before the boot partition, the
    FAT's used parts, and the ext4 root's used blocks. Anything else may keep old bytes on a card."""
    byte_ranges = [(0, boot.offset)]
    byte_ranges += [(boot.offset + a, boot.offset + b) for a, b in fatfs.used_ranges(img, boot.offset, boot.length)]
    size, used = extfs.used_blocks(f"{img}?offset={root.offset}")
    byte_ranges += [(root.offset + a * size, root.offset + (b + 1) * size) for a, b in used]
    out: list[tuple[int, int]] = []
    for start, end in sorted(byte_ranges):
        if end <= start:
            continue
        first, last = start // BLOCK, (end - 1) // BLOCK
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def range_digests(path, blocks, label: str = "") -> list[tuple[int, int, str]]:
    """[(first, last, sha256 of those blocks)], the last block cut at the end of the file."""
    size = os.path.getsize(path)
    total = sum(last - first + 1 for first, last in blocks) * BLOCK
    progress = Progress(label, total) if label else None
    out, done = [], 0
    with open(path, "rb") as f:
        for first, last in blocks:
            start, end = first * BLOCK, min((last + 1) * BLOCK, size)
            out.append((first, last, _sha256_range(f, start, end)))
            done += end - start
            if progress:
                progress.update(done)
    if progress:
        progress.done()
    return out


def render(size: int, ranges: list[tuple[int, int, str]]) -> str:
    """The bmap XML, its own checksum filled in as bmaptool expects."""
    blocks = (size + BLOCK - 1) // BLOCK
    mapped = sum(last - first + 1 for first, last, _ in ranges)
    body = "".join(f'        <Range chksum="{c}"> {a}-{b} </Range>\n' if a != b
                   else f'        <Range chksum="{c}"> {a} </Range>\n' for a, b, c in ranges)
    xml = ('<?xml version="1.0" ?>\n'
           '<!-- Block map of the glasses image, written by flash.sh build. -->\n'
           '<bmap version="2.0">\n'
           f'    <ImageSize> {size} </ImageSize>\n'
           f'    <BlockSize> {BLOCK} </BlockSize>\n'
           f'    <BlocksCount> {blocks} </BlocksCount>\n'
           f'    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n'
           '    <ChecksumType> sha256 </ChecksumType>\n'
           f'    <BmapFileChecksum> {"0" * 64} </BmapFileChecksum>\n'
           '    <BlockMap>\n' + body + '    </BlockMap>\n</bmap>\n')
    own = hashlib.sha256(xml.encode()).hexdigest()
    return _CHECKSUM_FIELD.sub(lambda m: m.group(1) + own + m.group(3), xml, count=1)


def parse(xml: str) -> tuple[int, list[tuple[int, int, str]], str]:
    """(image size, ranges, problem or '') of a bmap written by `render` or bmaptool."""
    m = _CHECKSUM_FIELD.search(xml)
    size_m = re.search(r"<ImageSize>\s*(\d+)\s*</ImageSize>", xml)
    if not m or not size_m:
        return 0, [], "not a bmap 2.0 file with a sha256 checksum"
    zeroed = xml[:m.start(2)] + "0" * 64 + xml[m.end(2):]
    problem = "" if hashlib.sha256(zeroed.encode()).hexdigest() == m.group(2) else \
        "the bmap file's own checksum does not match (edited or truncated)"
    ranges = [(int(a), int(b or a), c) for c, a, b in
              re.findall(r'<Range chksum="([0-9a-f]{64})">\s*(\d+)(?:-(\d+))?\s*</Range>', xml)]
    return int(size_m.group(1)), ranges, problem


def check_ranges(path, ranges, size: int | None = None) -> list[str]:
    """Ranges of `path` whose bytes differ from the bmap's checksums."""
    limit = os.path.getsize(path) if size is None else size
    bad = []
    with open(path, "rb") as f:
        for first, last, want in ranges:
            start, end = first * BLOCK, min((last + 1) * BLOCK, limit)
            if _sha256_range(f, start, end) != want:
                bad.append(f"blocks {first}-{last}")
    return bad


def _sha256_range(f, start: int, end: int) -> str:
    """sha256 of bytes [start, end) of an open file, read in CHUNK pieces."""
    f.seek(start)
    h, left = hashlib.sha256(), end - start
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()

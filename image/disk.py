"""The image file as a disk: its MBR partition table, sparse copies of byte ranges, hashes.

Copies skip holes (SEEK_DATA) and leave all-zero blocks as holes, so a 3 GB image
with 1 GB of data costs 1 GB of disk and the bmap lists only what must be written.
"""

import hashlib
import json
import os
from dataclasses import dataclass

from .tools import FlashError, Progress, run

SECTOR = 512
BLOCK = 4096
CHUNK = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_ZERO_CHUNK = bytes(CHUNK)
FAT_TYPES = {"b", "c", "e"}          # FAT32 (CHS/LBA), FAT16 LBA
LINUX_TYPE = "83"


@dataclass(frozen=True)
class Partition:
    number: int
    start: int                       # sectors
    size: int                        # sectors
    type: str

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    @property
    def length(self) -> int:
        return self.size * SECTOR

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class Table:
    label: str
    id: str                          # disk identifier, e.g. 0x12345678
    partitions: tuple[Partition, ...]

    @property
    def partuuid_prefix(self) -> str:
        return self.id.lower().removeprefix("0x").rjust(8, "0")


def read_table(img) -> Table:
    """The image's partition table; FlashError if there is none."""
    proc = run(["sfdisk", "--json", str(img)], ok_codes=(0, 1), what="reading the partition table")
    if proc.returncode != 0 or not proc.stdout.strip():
        raise FlashError(f"{img}: no partition table; a Raspberry Pi OS image has an MBR with a "
                         "FAT boot partition and an ext4 root partition")
    pt = json.loads(proc.stdout)["partitiontable"]
    sector = int(pt.get("sectorsize", SECTOR))
    if sector != SECTOR:
        raise FlashError(f"{img}: sector size {sector}; only {SECTOR}-byte sectors are supported")
    parts = tuple(Partition(i + 1, int(p["start"]), int(p["size"]), str(p["type"]).lower())
                  for i, p in enumerate(pt.get("partitions", [])))
    return Table(pt["label"], pt.get("id", ""), parts)


def rpi_partitions(img, table: Table) -> tuple[Partition, Partition]:
    """(boot, root) of a Raspberry Pi OS layout; FlashError saying what does not fit."""
    if table.label != "dos":
        raise FlashError(f"{img}: partition table is '{table.label}'; Raspberry Pi OS images use "
                         "an MBR ('dos') table")
    if len(table.partitions) != 2:
        raise FlashError(f"{img}: {len(table.partitions)} partitions; expected 2 (FAT boot, ext4 "
                         "root) as in Raspberry Pi OS")
    boot, root = table.partitions
    if boot.type not in FAT_TYPES:
        raise FlashError(f"{img}: partition 1 has type {boot.type}; expected FAT (c) for /boot/firmware")
    if root.type != LINUX_TYPE:
        raise FlashError(f"{img}: partition 2 has type {root.type}; expected Linux (83) for the root")
    size = os.path.getsize(img)
    if root.end > size or boot.end > root.offset:
        raise FlashError(f"{img}: partitions overlap or run past the end of the file ({size} bytes); "
                         "the image is truncated or damaged")
    return boot, root


def set_partition(img, number: int, start: int, size: int) -> None:
    """Move the end of partition `number` (sectors); type and disk identifier are kept."""
    run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", str(number), str(img)],
        input=f"{start},{size}\n".encode(), what="resizing the root partition")


def data_ranges(path, start: int = 0, length: int | None = None):
    """(offset, length) of the file's data regions within [start, start+length), per SEEK_DATA."""
    end = os.path.getsize(path) if length is None else start + length
    with open(path, "rb") as f:
        fd, pos = f.fileno(), start
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:          # ENXIO: only a hole is left
                return
            if data >= end:
                return
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            yield data, hole - data
            pos = hole


def copy_range(src, src_off: int, dst, dst_off: int, length: int, label: str = "") -> None:
    """Copy `length` bytes; all-zero 4 KiB blocks become holes in `dst` (which must be sparse there)."""
    progress = Progress(label, length) if label else None
    done = 0
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        for off, n in data_ranges(src, src_off, length):
            fin.seek(off)
            pos, left = off, n
            while left:
                chunk = fin.read(min(CHUNK, left))
                if not chunk:
                    raise FlashError(f"{src}: ended early at byte {pos}")
                _write_sparse(fout, dst_off + (pos - src_off), chunk)
                pos += len(chunk)
                left -= len(chunk)
                if progress:
                    progress.update(done + (pos - off))
            done += n
        if progress:
            progress.update(length)
    if progress:
        progress.done()


def _write_sparse(f, at: int, chunk: bytes) -> None:
    if chunk == _ZERO_CHUNK[:len(chunk)]:
        return
    view = memoryview(chunk)
    i, n = 0, len(chunk)
    while i < n:
        if view[i:i + BLOCK] == _ZERO_BLOCK[:min(BLOCK, n - i)]:
            i += BLOCK
            continue
        j = i
        while j < n and view[j:j + BLOCK] != _ZERO_BLOCK[:min(BLOCK, n - j)]:
            j += BLOCK
        f.seek(at + i)
        f.write(view[i:min(j, n)])
        i = j


def new_sparse(path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def write_stream_sparse(stream, dst, total: int, label: str) -> int:
    """Write a byte stream (xz output) into a new sparse file; returns the bytes written."""
    progress = Progress(label, total) if total else None
    pos = 0
    with open(dst, "wb") as fout:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            _write_sparse(fout, pos, chunk)
            pos += len(chunk)
            if progress:
                progress.update(pos)
        fout.truncate(pos)
    if progress:
        progress.done()
    return pos


def sha256_file(path, label: str = "") -> str:
    """sha256 of the whole file, holes hashed as the zeros they read as."""
    size = os.path.getsize(path)
    progress = Progress(label, size) if label else None
    h, pos = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for off, n in data_ranges(path):
            _hash_zeros(h, off - pos)
            f.seek(off)
            left = n
            while left:
                chunk = f.read(min(CHUNK, left))
                h.update(chunk)
                left -= len(chunk)
            pos = off + n
            if progress:
                progress.update(pos)
    _hash_zeros(h, size - pos)
    if progress:
        progress.done()
    return h.hexdigest()


def _hash_zeros(h, n: int) -> None:
    while n > 0:
        step = min(n, CHUNK)
        h.update(_ZERO_CHUNK[:step])
        n -= step


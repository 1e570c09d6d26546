"""The FAT boot partition, edited in place inside the image with mtools' `IMG@@OFFSET`."""

import os
import tempfile

from .tools import FlashError, run


class FatPartition:
    """Files in a FAT filesystem at byte `offset` of `img`; times are fixed to `epoch`."""

    def __init__(self, img, offset: int, epoch: int | None = None):
        self.target = f"{img}@@{offset}"
        self.epoch = epoch

    def names(self) -> set[str]:
        """Names in the root directory, lower-cased (FAT is case-insensitive)."""
        proc = run(["mdir", "-b", "-i", self.target, "::/"], ok_codes=(0, 1),
                   what="listing the boot partition")
        if proc.returncode != 0:
            raise FlashError(f"{self.target}: not a FAT filesystem "
                             f"({proc.stderr.decode(errors='replace').strip()})")
        return {line.rsplit("/", 1)[-1].strip().lower()
                for line in proc.stdout.decode(errors="replace").splitlines() if line.strip()}

    def read(self, name: str) -> bytes:
        return run(["mcopy", "-n", "-i", self.target, f"::/{name}", "-"],
                   what=f"reading {name} from the boot partition").stdout

    def write(self, name: str, data: bytes) -> None:
        """Create or replace a file in the root directory, dated `epoch`."""
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "file")
            with open(local, "wb") as f:
                f.write(data)
            if self.epoch is not None:
                os.utime(local, (self.epoch, self.epoch))
            run(["mcopy", "-o", "-m", "-i", self.target, local, f"::/{name}"], epoch=self.epoch,
                what=f"writing {name} to the boot partition")


def used_ranges(img, offset: int, length: int) -> list[tuple[int, int]]:
    """Byte ranges (start, end) of the FAT partition that hold anything: boot sector, FATs,
    root directory and clusters in use. The whole partition when the layout is not FAT16/32."""
    whole = [(0, length)]
    with open(img, "rb") as f:
        f.seek(offset)
        bpb = f.read(512)
        u16 = lambda at: int.from_bytes(bpb[at:at + 2], "little")  # noqa: E731
        u32 = lambda at: int.from_bytes(bpb[at:at + 4], "little")  # noqa: E731
        bps, spc, reserved, fats = u16(0x0B), bpb[0x0D], u16(0x0E), bpb[0x10]
        if bps not in (512, 1024, 2048, 4096) or not spc or not fats or bpb[510:512] != b"\x55\xaa":
            return whole
        total = u16(0x13) or u32(0x20)
        fat_sectors = u16(0x16) or u32(0x24)
        root_sectors = (u16(0x11) * 32 + bps - 1) // bps
        first_data = reserved + fats * fat_sectors + root_sectors
        clusters = (total - first_data) // spc
        if clusters < 4085 or total * bps > length:          # FAT12, or a BPB that lies
            return whole
        width = 4 if clusters >= 65525 else 2
        f.seek(offset + reserved * bps)
        table = f.read(fat_sectors * bps)
    entries = memoryview(table).cast("I" if width == 4 else "H")
    mask = 0x0FFFFFFF if width == 4 else 0xFFFF
    out = [(0, first_data * bps)]
    cluster_bytes = spc * bps
    for n in range(2, min(clusters + 2, len(entries))):
        if entries[n] & mask:
            start = first_data * bps + (n - 2) * cluster_bytes
            if out[-1][1] == start:
                out[-1] = (out[-1][0], start + cluster_bytes)
            else:
                out.append((start, start + cluster_bytes))
    return out

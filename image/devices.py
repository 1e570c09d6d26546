"""`flash.sh list-devices` and `flash.sh write`: pick a removable card, refuse anything else.

The rules are one function, `refusals`, used by both commands: whole disks only, removable
or on USB/MMC, not the disk holding / (per findmnt and lsblk), nothing mounted, not
read-only, no larger than the board's max_device_gb and no smaller than the image.
lsblk's and findmnt's JSON is all the code looks at, so tests put fakes first on PATH.
"""

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from . import bmap
from .disk import CHUNK
from .tools import FlashError, human, require, run, say, tool_env, which

LSBLK_COLUMNS = "NAME,PATH,SIZE,RM,HOTPLUG,TRAN,TYPE,MOUNTPOINT,MODEL,RO"
REMOVABLE_TRANSPORTS = {"usb", "mmc"}


def _flag(value) -> bool:
    return value in (True, 1, "1", "true")


def _mounts(node) -> list[str]:
    points = list(node.get("mountpoints") or [])
    if node.get("mountpoint"):
        points.append(node["mountpoint"])
    return [p for p in dict.fromkeys(points) if p]


def _walk(node):
    yield node
    for child in node.get("children") or []:
        yield from _walk(child)


def block_devices() -> list[dict]:
    proc = run(["lsblk", "--json", "--bytes", "--output", LSBLK_COLUMNS], what="lsblk")
    try:
        return json.loads(proc.stdout)["blockdevices"]
    except (ValueError, KeyError) as e:
        raise FlashError(f"lsblk printed something that is not its JSON: {e}") from None


def root_sources() -> set[str]:
    """Devices behind / (findmnt's SOURCE, without a btrfs [/subvolume] suffix)."""
    proc = run(["findmnt", "--json", "--output", "SOURCE,TARGET", "--target", "/"], what="findmnt")
    try:
        found = json.loads(proc.stdout)["filesystems"]
    except (ValueError, KeyError) as e:
        raise FlashError(f"findmnt printed something that is not its JSON: {e}") from None
    return {fs["source"].split("[", 1)[0] for fs in found if fs.get("source")}


def refusals(disk: dict, roots: set[str], max_bytes: int | None, image_bytes: int = 0) -> list[str]:
    """Why `disk` (an lsblk node with its children) must not be written; empty if it may be."""
    why = []
    if disk.get("type") != "disk":
        why.append(f"it is a {disk.get('type')}, not a whole disk")
    nodes = list(_walk(disk))
    if any(n.get("path") in roots or "/" in _mounts(n) for n in nodes):
        why.append("it holds the running system's root filesystem (/)")
    mounted = [(n.get("path"), m) for n in nodes for m in _mounts(n) if m != "/"]
    if mounted:
        where = ", ".join(f"{p} at {m}" for p, m in mounted)
        why.append(f"it is mounted ({where}); unmount first, e.g. udisksctl unmount -b {mounted[0][0]}")
    tran = disk.get("tran") or ""
    if not (_flag(disk.get("rm")) or _flag(disk.get("hotplug")) or tran in REMOVABLE_TRANSPORTS):
        why.append(f"it is not removable (rm=0, hotplug=0, transport {tran or 'none'}): "
                   "an internal disk, not an SD card or a CM in rpiboot mode")
    if _flag(disk.get("ro")):
        why.append("it is read-only (check the card's lock switch)")
    size = int(disk.get("size") or 0)
    if size == 0:
        why.append("it has no medium (size 0)")
    elif max_bytes is not None and size > max_bytes:
        why.append(f"it is {human(size)}, larger than the board's limit of {human(max_bytes)} "
                   "(image.max_device_gb)")
    elif image_bytes and size < image_bytes:
        why.append(f"it is {human(size)}, smaller than the image ({human(image_bytes)})")
    return why


def _resolve(device: str) -> str:
    path = device if "/" in device else f"/dev/{device}"
    return os.path.realpath(path) if os.path.exists(path) else path


def find_disk(device: str, disks: list[dict]) -> dict:
    dev = _resolve(device)
    for disk in disks:
        for node in _walk(disk):
            if node.get("path") == dev or f"/dev/{node.get('name')}" == dev:
                if node is not disk:
                    raise FlashError(f"{dev} is a partition of {disk.get('path')}; give the whole disk")
                return disk
    raise FlashError(f"{dev}: no such block device; see `flash.sh list-devices`")


def list_devices(max_bytes: int | None, out=print) -> int:
    disks, roots = block_devices(), root_sources()
    out(f"{'DEVICE':<16} {'SIZE':>9}  {'TRAN':<5} {'MODEL':<24} VERDICT")
    for disk in disks:
        if disk.get("type") != "disk":
            continue
        why = refusals(disk, roots, max_bytes)
        out(f"{disk.get('path') or '/dev/' + disk['name']:<16} {human(int(disk.get('size') or 0)):>9}  "
            f"{(disk.get('tran') or '-'):<5} {(disk.get('model') or '-')[:24]:<24} "
            f"{'ok to write' if not why else 'refused: ' + '; '.join(why)}")
    if max_bytes is None:
        out("(sizes not checked against a board: give --board)")
    return 0


def _readback(target: Path, size: int, want: str, ranges) -> str:
    """Drop cached pages and read the target again; FlashError if it differs from the image."""
    with open(target, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        if ranges is not None:
            bad = bmap.check_ranges(target, ranges, size)
            if bad:
                raise FlashError(f"read-back differs from the image in {', '.join(bad[:5])}; "
                                 "the card may be failing or fake")
            return f"{len(ranges)} mapped ranges match the bmap checksums"
        h, left = hashlib.sha256(), size
        while left:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                raise FlashError(f"read-back ended after {size - left} of {size} bytes")
            h.update(chunk)
            left -= len(chunk)
    if h.hexdigest() != want:
        raise FlashError(f"read-back sha256 {h.hexdigest()} differs from the image's {want}; "
                         "the card may be failing or fake")
    return f"sha256 {want} matches"


def write(image: Path, device: str, max_bytes: int, *, yes: bool = False, dry_run: bool = False,
          target_file: Path | None = None, no_bmap: bool = False, ask=input) -> None:
    """Write `image` to `device` (or to `target_file` after checking `device`), then read it back."""
    if not image.is_file():
        raise FlashError(f"{image}: image not found")
    size = image.stat().st_size
    sums = Path(f"{image}.sha256")
    want = sums.read_text().split()[0] if sums.exists() else None
    disk = find_disk(device, block_devices())
    why = refusals(disk, root_sources(), max_bytes, size)
    path = disk.get("path") or f"/dev/{disk['name']}"
    if why:
        raise FlashError(f"refusing to write {path}: " + "; ".join(why))
    bmap_file = Path(f"{image}.bmap")
    use_bmap = bmap_file.exists() and not no_bmap and which("bmaptool") is not None
    target = target_file or Path(path)
    how = "bmaptool" if use_bmap else "dd"
    say(f"write: {image.name} ({human(size)}) -> {path} ({disk.get('model') or 'no model'}, "
        f"{human(int(disk['size']))}){f' [bytes go to {target}]' if target_file else ''} with {how}")
    if dry_run:
        say("write (dry run): checks passed; nothing written")
        return
    if not yes:
        answer = ask(f"This erases everything on {path}. Type its name ({disk['name']}) to go on: ")
        if answer.strip() not in (disk["name"], path):
            raise FlashError("not confirmed; nothing was written")
    if want is None:
        from .disk import sha256_file
        want = sha256_file(image, "write: hashing the image")
    block = target.exists() and stat.S_ISBLK(target.stat().st_mode)
    if target.exists() and not os.access(target, os.W_OK):
        raise FlashError(f"no permission to write {target}: run flash.sh write with sudo, or join "
                         "the group that owns it (often 'disk')")
    if use_bmap:
        cmd = [require("bmaptool")["bmaptool"], "copy", "--bmap", str(bmap_file), str(image), str(target)]
    else:
        cmd = [require("dd")["dd"], f"if={image}", f"of={target}", "bs=4M", "conv=fsync", "status=progress"]
        if block:
            cmd.append("oflag=direct")
    proc = subprocess.run(cmd, env=tool_env(), timeout=6 * 3600)
    if proc.returncode != 0:
        raise FlashError(f"{how} failed (exit {proc.returncode}); the card is incomplete: write it again")
    subprocess.run([require("sync")["sync"]], timeout=600)
    ranges = None
    if use_bmap:
        _, ranges, problem = bmap.parse(bmap_file.read_text())
        if problem:
            raise FlashError(f"{bmap_file}: {problem}")
    say(f"write: read back: {_readback(target, size, want, ranges)}")
    print(f"wrote {image.name} to {target}; it can be removed")

"""`flash.sh build`: a Raspberry Pi OS base image in, the glasses image out; no root, no loop devices.

Steps: decompress the base into a sparse file; check it is Raspberry Pi OS; extract the
root partition to its own file, e2fsck and grow it with resize2fs there (never at an
offset inside the image); populate it with debugfs; write it back and move the
partition's end with sfdisk; edit config.txt and cmdline.txt with mtools; then hash,
bmap and manifest. Every date is SOURCE_DATE_EPOCH, so the same inputs give the same bytes.
"""

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware import boards
from . import bmap, bootcfg, debs, disk, extfs, models, secrets, wheels
from .fatfs import FatPartition
from .populate import populate
from .tools import FlashError, human, require, say, tool_env

MIB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
MARGIN = 256 * MIB                   # free space left in the root beyond the payload
WHEELS_ESTIMATE = 300 * MIB          # what a fresh download of the dependencies may take


@dataclass(frozen=True)
class BuildOptions:
    board: str
    base: Path
    out: Path
    models: Path | None = None
    secrets: Path | None = None
    wheels: Path | None = None       # pre-downloaded wheels; None: build and download
    debs: Path | None = None         # pre-downloaded system packages; None: download with the wheels
    grow_mb: int | None = None       # None: payload + margin
    dry_run: bool = False
    keep_work: bool = False


def _uncompressed_size(base: Path) -> int:
    if base.suffix != ".xz":
        return base.stat().st_size
    proc = subprocess.run([require("xz")["xz"], "--robot", "--list", str(base)], capture_output=True,
                          text=True, env=tool_env(), timeout=300)
    for line in proc.stdout.splitlines():
        fields = line.split("\t")
        if fields[0] == "totals" and len(fields) > 4:
            return int(fields[4])
    raise FlashError(f"{base}: not a valid .xz file ({proc.stderr.strip() or 'no size in its index'})")


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class Plan:
    """What `plan` found: the inputs, checked, and the first estimate of the root's growth."""
    board: boards.Board
    sec: secrets.Secrets
    model_hashes: dict[str, str]
    wheel_files: list[Path] | None   # None: built and downloaded during the build
    grow: int                        # bytes
    base_size: int                   # bytes, uncompressed


def _round_up_64mib(n: int) -> int:
    return -(-n // (64 * MIB)) * 64 * MIB


def _models_bytes(models_dir: Path | None, model_hashes: dict[str, str]) -> int:
    return sum((models_dir / r).stat().st_size for r in model_hashes) if models_dir else 0


def plan(o: BuildOptions) -> Plan:
    """Load and check every input before the first byte is written; FlashError on any problem."""
    board = boards.load(o.board)
    if board.image is None or board.service is None:
        raise FlashError(f"board {board.name} has no [image] or [service] table; it is not flashable")
    require("sfdisk", "mcopy", "mdir", "debugfs", "e2fsck", "resize2fs", "dumpe2fs")
    if o.base.suffix in (".gz", ".zip", ".zst", ".bz2", ".7z"):
        raise FlashError(f"{o.base}: {o.base.suffix} is not read here; decompress it to .img first "
                         "(Raspberry Pi OS releases are .img.xz, which is read directly)")
    if not o.base.is_file():
        raise FlashError(f"{o.base}: base image not found; get it with `flash.sh fetch --board {board.name}`")
    if not o.out.parent.is_dir():
        raise FlashError(f"{o.out.parent}: output directory does not exist")
    sec = secrets.load(o.secrets, board.name) if o.secrets else secrets.Secrets()
    model_hashes = models.collect(o.models) if o.models else {}
    wheel_files = None
    if o.wheels:
        wheel_files = sorted(o.wheels.glob("*.whl"))
        problems = wheels.check_dir(wheel_files, board.image.python_abi, board.image.platform)
        if problems:
            raise FlashError(f"{o.wheels}: wheels that do not fit {board.name}:\n  " + "\n  ".join(problems))
    payload = _models_bytes(o.models, model_hashes)
    payload += sum(w.stat().st_size for w in wheel_files) if wheel_files is not None else WHEELS_ESTIMATE
    grow = o.grow_mb * MIB if o.grow_mb is not None else _round_up_64mib(payload + MARGIN)
    base_size = _uncompressed_size(o.base)
    # The output image, plus the extracted root partition (at most the whole image).
    need = 2 * (base_size + grow)
    free = _free_bytes(o.out.parent)
    if need > free:
        raise FlashError(f"not enough disk space in {o.out.parent}: the build needs {human(need)}, "
                         f"{human(free)} free; free some space or pick another --out directory")
    return Plan(board, sec, model_hashes, wheel_files, grow, base_size)


def _first_boot_bytes(wheel_files, deb_files) -> int:
    """What the first boot writes: the wheels unpacked (plus a quarter for byte code and
    pip's bookkeeping) and the .debs' Installed-Size."""
    import zipfile
    unpacked = 0
    for w in wheel_files:
        with zipfile.ZipFile(w) as z:
            unpacked += sum(i.file_size for i in z.infolist())
    unpacked = unpacked * 5 // 4
    if deb_files:
        dpkg = require("dpkg-deb")["dpkg-deb"]
        for d in deb_files:
            out = subprocess.run([dpkg, "-f", str(d), "Installed-Size"], capture_output=True, text=True,
                                 env=tool_env())
            unpacked += int(out.stdout.strip() or 0) * 1024
    return unpacked


def _check_base(part: Path, base: Path) -> tuple[disk.Table, disk.Partition, disk.Partition]:
    try:
        table = disk.read_table(part)
        boot, root = disk.rpi_partitions(part, table)
        names = FatPartition(part, boot.offset).names()
        extfs.superblock_wtime(part, root.offset)
    except FlashError as e:
        raise FlashError(f"{base} is not a Raspberry Pi OS image: {e}") from None
    for name in ("config.txt", "cmdline.txt"):
        if name not in names:
            raise FlashError(f"{base} is not a Raspberry Pi OS image: its FAT boot partition has no {name}")
    if extfs.ExtFS(f"{part}?offset={root.offset}").stat("/etc/os-release") is None:
        raise FlashError(f"{base} is not a Raspberry Pi OS image: its root filesystem has no /etc/os-release")
    return table, boot, root


def _unpack(base: Path, part: Path, size: int) -> None:
    if base.suffix == ".xz":
        xz = require("xz")["xz"]
        proc = subprocess.Popen([xz, "-dc", "-T0", str(base)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=tool_env())
        got = disk.write_stream_sparse(proc.stdout, part, size, "build: decompressing the base image")
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait(timeout=60) != 0 or got != size:
            raise FlashError(f"{base}: xz could not decompress it: {err or f'{got} of {size} bytes'}")
    else:
        disk.new_sparse(part, size)
        disk.copy_range(base, 0, part, 0, size, "build: copying the base image")


def build(o: BuildOptions) -> dict:
    """Build the image; returns the outer manifest (also written next to it)."""
    started = time.monotonic()
    p = plan(o)
    if o.dry_run:
        _say_dry_run(o, p)
        return {}
    base_info = _check_pin(o.base, p.board)
    part = o.out.parent / f".{o.out.name}.part"
    work = o.out.parent / f".{o.out.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _unpack(o.base, part, p.base_size)
        _, boot, root = _check_base(part, o.base)
        epoch = _epoch(part, root)
        wheel_files = p.wheel_files if p.wheel_files is not None else _fetch_wheels(work, p.board)
        deb_files = _deb_files(o, part, root, work, p.board)
        grow = _final_grow(o, p, wheel_files, deb_files)
        root_file = work / "root.ext4"
        new_len = _extract_root(part, root, root_file, p.base_size + grow, epoch)
        manifest = populate(extfs.ExtFS(root_file, epoch), p.board, stage=work / "stage", epoch=epoch,
                            wheels=wheel_files, debs=deb_files, models_dir=o.models, model_hashes=p.model_hashes,
                            pin_hash=p.sec.pin_hash, cloud_init=bool(p.sec.user_data), base_info=base_info)
        extfs.fsck(root_file, fix=False, epoch=epoch)
        new_root = _write_root_back(root_file, part, root, new_len)
        _edit_boot(FatPartition(part, boot.offset, epoch), p.board, p.sec, o.base)
        outer = _seal(part, boot, new_root, o.out, manifest)
        os.replace(part, o.out)
    finally:
        if not o.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        part.unlink(missing_ok=True)
    took = time.monotonic() - started
    image = outer["image"]
    print(f"built {o.out}: {human(image['size'])}, sha256 {image['sha256']}, in {took:.1f} s")
    return outer


def _say_dry_run(o: BuildOptions, p: Plan) -> None:
    board = p.board
    say(f"build (dry run): would build {o.out} for {board.name} from {o.base}: "
        f"{human(p.base_size)} base grown by {human(p.grow)}")
    for line in bootcfg.config_lines(board):
        say(f"  config.txt: {line}")
    say(f"  cmdline.txt: remove {list(board.boot.cmdline_remove)}, add {list(board.boot.cmdline_add)}")
    say(f"  wheels: {len(p.wheel_files) if p.wheel_files is not None else 'built and downloaded'}; "
        f"models: {len(p.model_hashes)}; console PIN: {'set' if p.sec.pin_hash else 'none'}")


def _check_pin(base: Path, board) -> dict:
    """The base's sha256 against the board's pin; returns the manifest's `base` entry."""
    base_sha = disk.sha256_file(base, "build: hashing the base image")
    pinned = board.image.sha256.lower()
    if pinned and base.suffix == ".xz" and base_sha != pinned:
        raise FlashError(f"{base}: sha256 {base_sha} does not match the board's pinned {pinned}; "
                         "the download is damaged or not the pinned release: fetch it again")
    if pinned and base.suffix != ".xz":
        say("build: note: the board pins the .xz download; an uncompressed base is not checked against it")
    return {"file": base.name, "sha256": base_sha, "pinned": bool(pinned)}


def _epoch(part: Path, root: disk.Partition) -> int:
    env_epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    # Never before the base's own last write: e2fsck would call that a clock in the past.
    return max(int(env_epoch) if env_epoch.isdigit() else 0, extfs.superblock_wtime(part, root.offset))


def _fetch_wheels(work: Path, board) -> list[Path]:
    wheel_files = wheels.fetch(REPO, work / "wheels", board.image.python_abi, board.image.platform)
    problems = wheels.check_dir(wheel_files, board.image.python_abi, board.image.platform)
    if problems:
        raise FlashError("downloaded wheels do not fit the board:\n  " + "\n  ".join(problems))
    return wheel_files


def _deb_files(o: BuildOptions, part: Path, root: disk.Partition, work: Path, board) -> list[Path]:
    if o.debs is not None:
        return sorted(o.debs.glob("*.deb"))
    if o.wheels is None:
        return debs.fetch(extfs.ExtFS(f"{part}?offset={root.offset}"), work / "debs",
                          work / "apt", board.image.platform)
    say("build: --wheels given without --debs: no system packages bundled "
        f"({', '.join(debs.SYSTEM_PACKAGES)} must then be on the base already)")
    return []


def _final_grow(o: BuildOptions, p: Plan, wheel_files: list[Path], deb_files: list[Path]) -> int:
    """The planned growth, raised to what the payload and the first boot need unless --grow-mb is given."""
    # The first boot unpacks the wheels into the venv and installs the .debs: the root
    # needs room for both beside the files themselves (the base's own free space aside).
    needed = _first_boot_bytes(wheel_files, deb_files) + sum(f.stat().st_size for f in (*wheel_files, *deb_files))
    needed += _models_bytes(o.models, p.model_hashes)
    if o.grow_mb is None:
        return max(p.grow, _round_up_64mib(needed + MARGIN))
    return p.grow


def _extract_root(part: Path, root: disk.Partition, root_file: Path, image_size: int, epoch: int) -> int:
    """The root partition copied to `root_file`, checked, and grown to end at `image_size`
    bytes; returns its new length in bytes."""
    disk.new_sparse(root_file, root.length)
    disk.copy_range(part, root.offset, root_file, 0, root.length, "build: extracting the root partition")
    extfs.fsck(root_file, fix=True, epoch=epoch)
    new_len = (max(image_size, root.end) - root.offset) // MIB * MIB
    if new_len > root.length:
        os.truncate(root_file, new_len)
        extfs.resize(root_file, new_len, epoch=epoch)
    else:
        new_len = root.length
    say(f"build: root partition {human(root.length)} -> {human(new_len)}")
    return new_len


def _write_root_back(root_file: Path, part: Path, root: disk.Partition, new_len: int) -> disk.Partition:
    """The populated root back into the image, its partition moved to end after it; returns that partition."""
    os.truncate(part, root.offset)           # drop the old root: what follows is all new
    os.truncate(part, root.offset + new_len)
    disk.copy_range(root_file, 0, part, root.offset, new_len, "build: writing the root partition back")
    disk.set_partition(part, 2, root.start, new_len // disk.SECTOR)
    root_file.unlink()
    return disk.Partition(2, root.start, new_len // disk.SECTOR, root.type)


def _edit_boot(fat: FatPartition, board, sec: secrets.Secrets, base: Path) -> None:
    """config.txt and cmdline.txt for the board, and the cloud-init files if there are secrets."""
    config = fat.read("config.txt").decode("utf-8", errors="replace")
    fat.write("config.txt", bootcfg.render_config(config, board).encode())
    cmdline = fat.read("cmdline.txt").decode("utf-8", errors="replace")
    try:
        fat.write("cmdline.txt", bootcfg.render_cmdline(cmdline, board).encode())
    except ValueError as e:
        raise FlashError(f"{base}: {e}") from None
    for name, text in (("user-data", sec.user_data), ("network-config", sec.network_config),
                       ("meta-data", sec.meta_data)):
        if text:
            fat.write(name, text.encode())


def _seal(part: Path, boot: disk.Partition, root: disk.Partition, out: Path, manifest: dict) -> dict:
    """Hash and bmap the finished image, write the files beside `out`; returns the outer manifest."""
    digest = disk.sha256_file(part, "build: hashing the image")
    ranges = bmap.range_digests(part, bmap.image_blocks(part, boot, root), "build: hashing the block map")
    size = part.stat().st_size
    outer = dict(manifest, image={"file": out.name, "size": size, "sha256": digest,
                                  "bmap": f"{out.name}.bmap",
                                  "root_partition": {"start": root.start, "sectors": root.size}})
    Path(f"{out}.bmap").write_text(bmap.render(size, ranges))
    Path(f"{out}.sha256").write_text(f"{digest}  {out.name}\n")
    Path(f"{out}.manifest.json").write_text(json.dumps(outer, indent=2, sort_keys=True) + "\n")
    return outer

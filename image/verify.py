"""`flash.sh verify OUT.img --board B`: table-driven checks of a built image, one line per check.

Each check returns (status, detail): ok, FAIL, warn (the image works but something the
firmware wants is missing from the base) or skip. Nothing is mounted or written; the
root filesystem is read in place through e2fsprogs' `IMG?offset=N`.
"""

import json
import os
import re
import tempfile
import tomllib
from functools import cached_property
from pathlib import Path

from glasses_firmware import boards
from glasses_firmware.boards.schema import from_toml
from glasses_firmware.drivers.errors import GlassesError

from . import bmap, bootcfg, disk, rootfs, wheels
from .extfs import ExtFS, fsck
from .fatfs import FatPartition
from .tools import FlashError, require, run, which

OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skip"
APT_FILES = {   # file in the root -> apt package the firmware needs from the base image
    "/usr/lib/python3/dist-packages/picamera2": "python3-picamera2",
    "/usr/lib/aarch64-linux-gnu/libportaudio.so.2": "libportaudio2",
}


class Image:
    """Lazy views of a built image for the checks."""

    def __init__(self, path: Path, board):
        self.path, self.board = path, board

    @cached_property
    def parts(self):
        return disk.rpi_partitions(self.path, self.table)

    @cached_property
    def table(self):
        return disk.read_table(self.path)

    @cached_property
    def fat(self):
        return FatPartition(self.path, self.parts[0].offset)

    @cached_property
    def root(self):
        return ExtFS(f"{self.path}?offset={self.parts[1].offset}")

    @cached_property
    def account(self):
        acc, _ = rootfs.service_account(self.root.read("/etc/passwd").decode(),
                                        self.root.read("/etc/group").decode(),
                                        self.board.service.user, self.board.service.groups)
        return acc

    @cached_property
    def manifest(self) -> dict:
        return json.loads(self.root.read(rootfs.MANIFEST))


def _scratch(im: Image) -> Path | None:
    """Beside the image when we may write there (big partitions, and /tmp may be small)."""
    return im.path.parent if os.access(im.path.parent, os.W_OK) else None


def check_partitions(im: Image):
    boot, root = im.parts
    size = im.path.stat().st_size
    problems = [f"partition {p.number} not 1 MiB aligned" for p in (boot, root) if p.start % 2048]
    if root.end != size:
        problems.append(f"root ends at {root.end}, image is {size} bytes")
    detail = (f"dos {im.table.id}, boot {boot.length // 2**20} MiB type {boot.type}, "
              f"root {root.length // 2**20} MiB at sector {root.start}")
    return (FAIL, "; ".join(problems)) if problems else (OK, detail)


def check_boot_fsck(im: Image):
    require("fsck.vfat")
    boot = im.parts[0]
    with tempfile.TemporaryDirectory(dir=_scratch(im)) as tmp:
        local = Path(tmp) / "boot.vfat"
        disk.new_sparse(local, boot.length)
        disk.copy_range(im.path, boot.offset, local, 0, boot.length)
        proc = run(["fsck.vfat", "-n", str(local)], ok_codes=(0, 1))
    last = proc.stdout.decode(errors="replace").strip().splitlines()[-1:]
    return (OK if proc.returncode == 0 else FAIL, (last[0] if last else "").replace(str(local), "boot"))


def check_root_fsck(im: Image):
    try:
        return OK, fsck(f"{im.path}?offset={im.parts[1].offset}", fix=False).split(": ", 1)[-1]
    except FlashError as e:
        return FAIL, str(e)


def check_config(im: Image):
    block = bootcfg.generated_block(im.fat.read("config.txt").decode(errors="replace"))
    if block is None:
        return FAIL, "no generated block in config.txt"
    missing = [line for line in bootcfg.config_lines(im.board) if line not in block]
    if missing:
        return FAIL, "missing " + ", ".join(missing)
    return OK, f"{len(bootcfg.config_lines(im.board))} generated lines present"


def check_cmdline(im: Image):
    text = im.fat.read("cmdline.txt").decode(errors="replace")
    problems = bootcfg.cmdline_problems(text, im.board, im.table.partuuid_prefix)
    return (FAIL, "; ".join(problems)) if problems else (OK, text.strip())


def check_user(im: Image):
    acc, problems = rootfs.service_account(im.root.read("/etc/passwd").decode(),
                                           im.root.read("/etc/group").decode(),
                                           im.board.service.user, im.board.service.groups)
    if acc is None or problems:
        return FAIL, "; ".join(problems)
    groups = ", ".join(f"{g}={gid}" for g, gid in acc.group_ids.items())
    return OK, f"{acc.user} uid {acc.uid} gid {acc.gid}; groups {groups}"


def check_unit(im: Image):
    text = im.root.read(rootfs.UNIT).decode()
    keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    want = {"Type": "notify", "Restart": "on-failure", "User": im.board.service.user}
    problems = [f"{k}={keys.get(k)!r}, want {v}" for k, v in want.items() if keys.get(k) != v]
    if not keys.get("WatchdogSec", "").isdigit():
        problems.append("no WatchdogSec")
    if f"{rootfs.VENV}/bin/glasses run" not in keys.get("ExecStart", ""):
        problems.append("ExecStart does not run the firmware from the venv")
    return (FAIL, "; ".join(problems)) if problems else \
        (OK, f"Type=notify WatchdogSec={keys['WatchdogSec']} Restart=on-failure User={keys['User']}")


def check_sandbox(im: Image):
    """The unit's network sandbox as the build wrote it: loopback only, unless widened at
    run time by glasses-netallow (whose path unit must be enabled for that)."""
    text = im.root.read(rootfs.UNIT).decode()
    have = set(re.findall(r"^(\w+=.*)$", text, re.M))
    want = set(rootfs.SANDBOX.splitlines())
    missing = sorted(want - have)
    if missing:
        return FAIL, f"glasses.service lacks {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else "")
    return OK, f"{len(want)} sandbox settings, IPAddressDeny=any IPAddressAllow=localhost"


# systemd's "OK" band ends at 4.9; "MEDIUM" begins above it.
MAX_EXPOSURE = 5.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: ([\d.]+) (\w+)")


def exposure(unit_text: str) -> tuple[float, str]:
    """systemd-analyze's offline score for a unit file: (exposure, rating), 0 best, 10 worst."""
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp, os.path.basename(rootfs.UNIT))
        unit.write_text(unit_text)
        # It exits 1 when the score is over its --threshold (default 100): never here.
        out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                  what="systemd-analyze security").stdout.decode()
    found = EXPOSURE.search(out)
    if not found:
        raise FlashError(f"systemd-analyze security printed no overall exposure: {out[-200:]!r}")
    return float(found.group(1)), found.group(2)


def check_exposure(im: Image):
    if not which("systemd-analyze"):
        return SKIP, "no systemd-analyze on this machine (apt-get install systemd)"
    score, rating = exposure(im.root.read(rootfs.UNIT).decode())
    detail = f"systemd-analyze security: {score} {rating} (at most {MAX_EXPOSURE})"
    return (OK if score <= MAX_EXPOSURE else FAIL), detail


def _enabled(unit: str):
    def check(im: Image):
        link = f"{rootfs.WANTS}/{os.path.basename(unit)}"
        target = im.root.readlink(link)
        if target != unit:
            return FAIL, f"{link} -> {target!r}, want {unit}"
        return OK, f"{link} -> {unit}"
    return check


def check_getty(im: Image):
    path = rootfs.getty_unit(im.board)
    target = im.root.readlink(path)
    return (OK, f"{os.path.basename(path)} masked") if target == "/dev/null" else \
        (FAIL, f"{path} -> {target!r}: a getty would fight the firmware console for the UART")


def check_owners(im: Image):
    acc = im.account
    if acc is None:
        return FAIL, "no service user"
    ids = {"root": (0, 0), "service": (acc.uid, acc.gid)}
    items = rootfs.layout(im.board)
    listing = im.root.listdirs(sorted({os.path.dirname(i.path) for i in items}))
    problems = []
    for item in items:
        entry = (listing.get(os.path.dirname(item.path)) or {}).get(os.path.basename(item.path))
        if entry is None:
            problems.append(f"{item.path} missing")
            continue
        want = (item.kind == "d", item.mode, ids[item.owner][0], ids[item.group][1])
        got = (entry.is_dir, entry.mode & 0o7777, entry.uid, entry.gid)
        if got != want:
            problems.append(f"{item.path} mode {got[1]:o} {got[2]}:{got[3]}, want {want[1]:o} {want[2]}:{want[3]}")
    return (FAIL, "; ".join(problems)) if problems else (OK, f"{len(items)} paths")


def check_no_device_key(im: Image):
    """No device key in the image (each card makes its own at first boot), and the unit
    that makes it."""
    key_dir, key_names = rootfs.key_files(im.board)
    found = sorted(n for n in (im.root.listdirs([key_dir])[key_dir] or {})
                   if rootfs.is_key_name(n, key_names))
    if found:
        return FAIL, (f"{', '.join(f'{key_dir}/{n}' for n in found)}: a device key in the image; "
                      "every card written from it would share it: rebuild from a clean base")
    unit = dict(re.findall(r"^(\w+)=(.*)$", im.root.read(rootfs.UNIT).decode(), re.M))
    if "-m glasses_firmware.drivers.devicekey" not in unit.get("ExecStartPre", ""):
        return FAIL, "glasses.service does not make the device key at first boot (no ExecStartPre)"
    source = "the OTP key, else " if im.board.storage.key_source == "otp" else ""
    return OK, f"none in {key_dir}; {source}{key_dir}/{key_names[0]} made at first boot"


def check_board_file(im: Image):
    text = im.root.read(rootfs.BOARD_TOML).decode()
    loaded = from_toml(tomllib.loads(text), rootfs.BOARD_TOML)
    if loaded.name != im.board.name:
        return FAIL, f"board {loaded.name}, want {im.board.name}"
    if bool(loaded.console.pin_hash) != bool(im.manifest.get("console_pin")):
        return FAIL, "console PIN hash does not match the build manifest"
    return OK, f"{loaded.name}, console PIN {'set (scrypt hash)' if loaded.console.pin_hash else 'not set'}"


def check_wheels(im: Image):
    names = sorted((im.root.listdirs([rootfs.WHEELS])[rootfs.WHEELS] or {}))
    spec = im.board.image
    problems = wheels.check_dir([Path(n) for n in names], spec.python_abi, spec.platform)
    if sorted(im.manifest.get("wheels", {})) != names:
        problems.append("wheels on the image differ from the build manifest")
    return (FAIL, "; ".join(problems)) if problems else \
        (OK, f"{len(names)} wheels fit {spec.python_abi} / {spec.platform}")


def check_models(im: Image):
    want = im.manifest.get("models", {})
    if not want:
        return SKIP, "no models in this image"
    from .models import sha256
    with tempfile.TemporaryDirectory(dir=_scratch(im)) as tmp:
        names = sorted(want)
        local = [os.path.join(tmp, str(i)) for i in range(len(names))]
        im.root.dump([(f"{rootfs.MODELS}/{rel}", dst) for rel, dst in zip(names, local)])
        bad = [rel for rel, dst in zip(names, local)
               if not os.path.isfile(dst) or sha256(Path(dst)) != want[rel]]
    return (FAIL, "hash mismatch or missing: " + ", ".join(bad)) if bad else (OK, f"{len(want)} files match")


def check_artifacts(im: Image):
    sums, bmap_file = Path(f"{im.path}.sha256"), Path(f"{im.path}.bmap")
    if not sums.exists():
        return SKIP, f"no {sums.name}"
    digest = disk.sha256_file(im.path)
    want = sums.read_text().split()[0]
    if digest != want:
        return FAIL, f"sha256 {digest} does not match {sums.name} ({want})"
    if bmap_file.exists():
        size, ranges, problem = bmap.parse(bmap_file.read_text())
        bad = bmap.check_ranges(im.path, ranges) if not problem else []
        if problem or bad or size != im.path.stat().st_size:
            return FAIL, f"{bmap_file.name}: {problem or ', '.join(bad[:3]) or 'wrong image size'}"
    return OK, f"sha256 {digest}" + (f", {bmap_file.name} matches" if bmap_file.exists() else "")


def check_apt(im: Image):
    missing = [pkg for path, pkg in APT_FILES.items() if im.root.stat(path) is None]
    if missing:
        return WARN, f"the base lacks {', '.join(missing)}: the firmware degrades until " \
                     f"'apt install {' '.join(missing)}'"
    return OK, ", ".join(APT_FILES.values())


CHECKS = [
    ("partition table", check_partitions),
    ("boot filesystem (fsck.vfat)", check_boot_fsck),
    ("root filesystem (e2fsck)", check_root_fsck),
    ("config.txt", check_config),
    ("cmdline.txt", check_cmdline),
    ("service user and groups", check_user),
    ("glasses.service", check_unit),
    ("glasses.service enabled", _enabled(rootfs.UNIT)),
    ("glasses-firstboot.service enabled", _enabled(rootfs.FIRSTBOOT_UNIT)),
    ("glasses.service sandbox", check_sandbox),
    ("glasses.service exposure", check_exposure),
    ("glasses-netallow.path enabled", _enabled(rootfs.NETALLOW_PATH)),
    ("serial getty", check_getty),
    ("owners and modes", check_owners),
    ("board file", check_board_file),
    ("no device key", check_no_device_key),
    ("wheels", check_wheels),
    ("models", check_models),
    ("image sha256 and bmap", check_artifacts),
    ("apt packages", check_apt),
]


def verify(path: Path, board_name: str, out=print) -> bool:
    """Run every check; True when none failed."""
    if not path.is_file():
        raise FlashError(f"{path}: image not found")
    require("sfdisk", "mdir", "mcopy", "debugfs", "e2fsck")
    im = Image(path, boards.load(board_name))
    failed = 0
    for name, check in CHECKS:
        try:
            status, detail = check(im)
        except (GlassesError, ValueError, KeyError, OSError) as e:
            status, detail = FAIL, str(e).splitlines()[0]
        failed += status == FAIL
        out(f"{status:<4} {name}: {detail}")
    out(f"{len(CHECKS) - failed} of {len(CHECKS)} checks passed" if failed
        else f"all {len(CHECKS)} checks passed")
    return failed == 0

"""`flash.sh base`: a Raspberry Pi OS-like arm64 base image made from Debian bookworm packages.

What `flash.sh build` expects of Raspberry Pi OS Lite, made offline from Debian's arm64
archive so the whole path (build, first boot, service, UART) can run under QEMU: an MBR
disk, a FAT boot partition with config.txt and cmdline.txt (`root=PARTUUID=<id>-02`, as
Pi OS writes it) and Debian's arm64 kernel and initrd as kernel8.img and initramfs8, and
an ext4 root with the same Python 3.11 and glibc 2.36 as Pi OS bookworm, the gpio, i2c and
spi groups Pi OS has, hostname raspberrypi and an fstab by PARTUUID. Like Pi OS Lite it
has no PortAudio, espeak-ng or picamera2: the image build has to bring what the firmware
needs. It does not boot a real Compute Module (Debian's kernel has no Pi firmware); it is
the stand-in that `flash.sh boot-test` boots on QEMU's virt machine.

Two steps, each cached under build/base/ by a hash of its inputs: mmdebstrap writes the
package set to a tarball (the slow part: the packages' scripts run under qemu-user, about
30 minutes on 2 cores), then the tarball is packed into the disk image (about a minute).
Packing needs root (the files' owners go into the ext4 through mkfs.ext4 -d); so does
mmdebstrap, unless user namespaces allow its unshare mode.
"""

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import disk
from .tools import FlashError, human, require, say, tool_env

MIB = 1 << 20
REPO = Path(__file__).resolve().parent.parent
BOOT_MIB = 512                        # as Raspberry Pi OS bookworm
PI_GROUPS = ("gpio", "i2c", "spi")     # groups Raspberry Pi OS has and Debian does not
HOSTNAME = "raspberrypi"
FORMAT = 1                            # bump when the packing below changes what it writes


@dataclass(frozen=True)
class BaseSpec:
    suite: str = "bookworm"
    arch: str = "arm64"
    mirror: str = "http://deb.debian.org/debian"
    variant: str = "minbase"
    # Debian's names for what Raspberry Pi OS Lite boots with: systemd and udev, D-Bus,
    # Python 3.11 with venv, BlueZ and ALSA's tools, and Debian's kernel for the virt machine.
    packages: tuple[str, ...] = (
        "systemd", "udev", "dbus", "kmod", "libpam-systemd", "linux-image-arm64", "e2fsprogs",
        "dosfstools", "python3", "python3-venv", "bluez", "alsa-utils", "iproute2", "procps")
    epoch: int = 1700000000           # dates of the files the packing writes

    def key(self, stage: str) -> str:
        """Hash of what a stage's output depends on."""
        inputs = dict(asdict(self), format=FORMAT)
        if stage == "tar":
            del inputs["epoch"], inputs["format"]
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Timings:
    phases: dict[str, float] = field(default_factory=dict)

    def phase(self, name: str, started: float) -> None:
        self.phases[name] = round(time.monotonic() - started, 1)


def cache_dir() -> Path:
    return Path(os.environ.get("GLASSES_BUILD_DIR", REPO / "build")) / "base"


def base_path(spec: BaseSpec = BaseSpec()) -> Path:
    return cache_dir() / f"{spec.suite}-{spec.arch}-{spec.key('image')}.img"


def ensure(spec: BaseSpec = BaseSpec(), rebuild: bool = False) -> Path:
    """The base image for `spec`, built if its inputs changed since the last build."""
    out = base_path(spec)
    if out.is_file() and not rebuild:
        say(f"base: {out} is up to date (inputs unchanged; --rebuild makes it again)")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tar = cache_dir() / f"{spec.suite}-{spec.arch}-{spec.key('tar')}.tar"
    if not tar.is_file() or rebuild:
        debootstrap(spec, tar)
    else:
        say(f"base: reusing the package tarball {tar.name}")
    pack(spec, tar, out)
    for old in cache_dir().glob(f"{spec.suite}-{spec.arch}-*"):
        if old not in (out, tar) and old.suffix in (".img", ".tar"):
            old.unlink()
    return out


def debootstrap(spec: BaseSpec, tar: Path) -> None:
    """mmdebstrap the package set into `tar`, its progress on stderr with the time taken."""
    tools = require("mmdebstrap")
    if os.geteuid() != 0 and not Path("/proc/sys/kernel/unprivileged_userns_clone").exists():
        say("base: not root; mmdebstrap will try its unshare mode (needs user namespaces)")
    _check_binfmt(spec.arch)
    part = tar.with_suffix(".tar.part")
    # --format: mmdebstrap picks its output's format from the name, and ".part" would make
    # it a directory.
    cmd = [tools["mmdebstrap"], "--format=tar", f"--arch={spec.arch}", f"--variant={spec.variant}",
           f"--include={','.join(spec.packages)}", "--aptopt=Acquire::Retries=3",
           spec.suite, str(part), spec.mirror]
    say(f"base: mmdebstrap {spec.suite} {spec.arch}, {len(spec.packages)} packages and their "
        "dependencies (the packages' scripts run under qemu-user: about 30 minutes on 2 cores)")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=tool_env(),
                            text=True, errors="replace")
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-20:]
        if line.startswith(("I: ", "E: ", "W: ")):
            say(f"base: [{time.monotonic() - started:6.0f} s] {line[3:]}")
    if proc.wait() != 0:
        part.unlink(missing_ok=True)
        raise FlashError("mmdebstrap failed (exit {}):\n  {}".format(proc.returncode, "\n  ".join(tail)))
    os.replace(part, tar)
    say(f"base: package tarball {tar.name}, {human(tar.stat().st_size)}, in {time.monotonic() - started:.0f} s")


def _check_binfmt(arch: str) -> None:
    """mmdebstrap runs arm64 maintainer scripts through qemu-user's binfmt handler."""
    if arch != "arm64" or os.uname().machine == "aarch64":
        return
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise FlashError("arm64 programs cannot run on this machine: no qemu-aarch64 binfmt handler. "
                         "Install it with: apt-get install qemu-user-static binfmt-support "
                         "(and, in a container, mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc "
                         "then update-binfmts --enable qemu-aarch64)")


def _disk_id(spec: BaseSpec) -> str:
    return spec.key("image")[:8]


def pack(spec: BaseSpec, tar: Path, out: Path) -> None:
    """The tarball into an MBR disk image: FAT boot partition 1, ext4 root partition 2."""
    if os.geteuid() != 0:
        raise FlashError("packing the base needs root (the files' owners go into the ext4 with "
                         "mkfs.ext4 -d); run `sudo ./flash.sh base` once, it is cached after that")
    tools = require("sfdisk", "mkfs.vfat", "mcopy", "mmd", "mkfs.ext4")
    started = time.monotonic()
    work = out.parent / f".{out.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "root"
    tree.mkdir(parents=True)
    try:
        say(f"base: unpacking {tar.name}")
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-xpf", str(tar), "-C", str(tree)],
                       check=True, env=tool_env())
        ident = _disk_id(spec)
        _customize(tree, ident, spec.epoch)
        boot_dir = work / "boot"
        boot_dir.mkdir()
        _boot_files(tree, boot_dir, ident)

        used = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file() and not f.is_symlink())
        root_mib = int(used * 1.3 / MIB) + 256
        start = 8192                                         # 4 MiB, as Pi OS
        boot_sectors = BOOT_MIB * MIB // disk.SECTOR
        root_start = start + boot_sectors
        root_sectors = root_mib * MIB // disk.SECTOR
        size = (root_start + root_sectors) * disk.SECTOR
        env = tool_env(spec.epoch)

        fat = work / "boot.vfat"
        disk.new_sparse(fat, BOOT_MIB * MIB)
        _run([tools["mkfs.vfat"], "-F", "32", "-n", "bootfs", "-i", ident, str(fat)], env)
        for f in sorted(boot_dir.iterdir()):
            _run([tools["mcopy"], "-i", str(fat), "-m", str(f), f"::{f.name}"], env)

        ext = work / "root.ext4"
        say(f"base: writing the root filesystem ({human(used)} of files into {root_mib} MiB)")
        uuid = hashlib.sha256(f"root-{ident}".encode()).hexdigest()
        uuid = f"{uuid[:8]}-{uuid[8:12]}-4{uuid[13:16]}-8{uuid[17:20]}-{uuid[20:32]}"
        _run([tools["mkfs.ext4"], "-q", "-F", "-L", "rootfs", "-U", uuid, "-E", f"hash_seed={uuid}",
              "-d", str(tree), str(ext), f"{root_mib}M"], env)

        part = out.with_suffix(".img.part")
        disk.new_sparse(part, size)
        layout = (f"label: dos\nlabel-id: 0x{ident}\nunit: sectors\n\n"
                  f"start={start}, size={boot_sectors}, type=c\n"
                  f"start={root_start}, size={root_sectors}, type=83\n")
        _run([tools["sfdisk"], "--no-reread", "--no-tell-kernel", str(part)], env, layout.encode())
        disk.copy_range(fat, 0, part, start * disk.SECTOR, BOOT_MIB * MIB, "base: writing the boot partition")
        disk.copy_range(ext, 0, part, root_start * disk.SECTOR, root_sectors * disk.SECTOR,
                        "base: writing the root partition")
        os.replace(part, out)
        out.with_suffix(".json").write_text(json.dumps(
            dict(asdict(spec), disk_id=ident, tarball=tar.name, size=size, format=FORMAT),
            indent=2, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"base: {out} ({human(size)}, disk id {ident}) in {time.monotonic() - started:.0f} s")


def _run(cmd: list[str], env: dict, data: bytes | None = None) -> None:
    proc = subprocess.run(cmd, input=data, capture_output=True, env=env)
    if proc.returncode != 0:
        raise FlashError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}): "
                         f"{(proc.stderr or proc.stdout).decode(errors='replace').strip()}")


def _write(path: Path, text: str, epoch: int, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    os.utime(path, (epoch, epoch))


def _customize(tree: Path, ident: str, epoch: int) -> None:
    """What makes the Debian tree look like Raspberry Pi OS to the image build and the firmware."""
    _write(tree / "etc/hostname", f"{HOSTNAME}\n", epoch)
    _write(tree / "etc/hosts", f"127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
           f"127.0.1.1\t{HOSTNAME}\n", epoch)
    _write(tree / "etc/fstab", "proc            /proc           proc    defaults          0       0\n"
           f"PARTUUID={ident}-01  /boot/firmware  vfat    defaults          0       2\n"
           f"PARTUUID={ident}-02  /               ext4    defaults,noatime  0       1\n", epoch)
    (tree / "boot/firmware").mkdir(exist_ok=True)
    _add_groups(tree / "etc", PI_GROUPS, epoch)
    # No network is configured (the glasses' link is Bluetooth); apt is pointed at nothing so
    # nothing on the image reaches out by itself.
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        link = tree / "etc/systemd/system/timers.target.wants" / timer
        if link.is_symlink():
            link.unlink()


def _add_groups(etc: Path, names, epoch: int) -> None:
    group = (etc / "group").read_text()
    gids = {int(r.split(":")[2]) for r in group.splitlines() if r.count(":") >= 3}
    have = {r.split(":")[0] for r in group.splitlines()}
    free = (g for g in range(999, 99, -1) if g not in gids)
    for name in names:
        if name in have:
            continue
        gid = next(free)
        group += f"{name}:x:{gid}:\n"
        gshadow = etc / "gshadow"
        if gshadow.exists():
            stat = gshadow.stat()
            gshadow.write_text(gshadow.read_text() + f"{name}:!::\n")
            os.chown(gshadow, stat.st_uid, stat.st_gid)
            os.utime(gshadow, (epoch, epoch))
    stat = (etc / "group").stat()
    _write(etc / "group", group, epoch, stat.st_mode & 0o7777)


def _boot_files(tree: Path, boot_dir: Path, ident: str) -> None:
    """Kernel, initrd, config.txt and cmdline.txt of the FAT partition, named as on Pi OS."""
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise FlashError("the package tarball has no /boot/vmlinuz-* or initrd.img-*; "
                         "is linux-image-arm64 in the package list?")
    shutil.copyfile(kernels[-1], boot_dir / "kernel8.img")
    shutil.copyfile(initrds[-1], boot_dir / "initramfs8")
    (boot_dir / "config.txt").write_text(
        "# Raspberry Pi OS-like base made by flash.sh base from Debian bookworm arm64\n"
        "# (Debian's kernel: boots QEMU's virt machine, not a Compute Module)\n"
        "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\n"
        "arm_64bit=1\narm_boost=1\n\n[cm4]\notg_mode=1\n\n[all]\n")
    (boot_dir / "cmdline.txt").write_text(
        f"console=serial0,115200 console=tty1 root=PARTUUID={ident}-02 rootfstype=ext4 "
        "fsck.repair=yes rootwait\n")
    (boot_dir / "issue.txt").write_text(
        f"Raspberry Pi OS-like base, Debian {kernels[-1].name.removeprefix('vmlinuz-')} kernel, "
        "made by flash.sh base\n")

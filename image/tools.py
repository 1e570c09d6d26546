"""External tools: where they come from, how they are run, and progress for long steps.

Every tool the image code runs is named in TOOLS with the Debian package that ships
it, so a missing one is reported as "install it with: apt-get install PKG". Tools run
with a fixed locale, time zone and fake clock so two builds give the same bytes.
"""

import os
import shutil
import subprocess
import sys
import time

from glasses_firmware.drivers.errors import GlassesError

# tool -> Debian package that provides it
TOOLS = {
    "sfdisk": "fdisk",
    "mcopy": "mtools", "mdir": "mtools", "mmd": "mtools", "mformat": "mtools",
    "debugfs": "e2fsprogs", "e2fsck": "e2fsprogs", "resize2fs": "e2fsprogs", "dumpe2fs": "e2fsprogs",
    "mkfs.ext4": "e2fsprogs",
    "fsck.vfat": "dosfstools", "mkfs.vfat": "dosfstools",
    "xz": "xz-utils",
    "curl": "curl", "wget": "wget",
    "lsblk": "util-linux", "findmnt": "util-linux",
    "dd": "coreutils", "sync": "coreutils",
    "bmaptool": "bmap-tools",
    "shellcheck": "shellcheck",
    "mmdebstrap": "mmdebstrap qemu-user-static binfmt-support",     # flash.sh base
    "qemu-system-aarch64": "qemu-system-arm", "qemu-img": "qemu-utils",   # flash.sh boot-test
    "apt-get": "apt", "dpkg-deb": "dpkg",
    "rpiboot": "rpiboot (Raspberry Pi OS; elsewhere build it from the raspberrypi/usbboot repository)",
}

# Debian keeps admin tools in /usr/sbin, which is not on a normal user's PATH.
_EXTRA_PATH = ("/usr/sbin", "/sbin")


class FlashError(GlassesError, RuntimeError):
    """A build, verify or write step cannot go on; the message says what to do."""


class ToolMissing(FlashError, FileNotFoundError):
    """A required program is not installed; the message names its apt package."""


def which(tool: str) -> str | None:
    path = os.environ.get("PATH", "")
    return shutil.which(tool, path=os.pathsep.join([path, *_EXTRA_PATH]))


def require(*tools: str) -> dict[str, str]:
    """Absolute paths of `tools`; ToolMissing naming every missing one and its package."""
    found, missing = {}, []
    for tool in tools:
        path = which(tool)
        if path:
            found[tool] = path
        else:
            missing.append(tool)
    if missing:
        packages = sorted({TOOLS.get(t, t) for t in missing})
        raise ToolMissing(f"missing tool{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
                          f"install with: apt-get install {' '.join(packages)}")
    return found


def tool_env(epoch: int | None = None) -> dict[str, str]:
    """The environment every tool runs in: C locale, UTC, and a fixed clock when given."""
    env = dict(os.environ, LC_ALL="C", TZ="UTC", MTOOLS_SKIP_CHECK="1", MTOOLSRC="/dev/null")
    env["PATH"] = os.pathsep.join([env.get("PATH", ""), *_EXTRA_PATH])
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
        env["E2FSPROGS_FAKE_TIME"] = str(epoch)
        env["E2FSCK_TIME"] = str(epoch)          # e2fsck reads its own variable
    return env


def run(cmd: list[str], *, input: bytes | None = None, epoch: int | None = None,
        ok_codes=(0,), what: str = "") -> subprocess.CompletedProcess:
    """Run a tool, capturing output; FlashError with its stderr if the exit code is not ok."""
    require(cmd[0])
    try:
        proc = subprocess.run(cmd, input=input, capture_output=True, env=tool_env(epoch),
                              timeout=3600)
    except subprocess.TimeoutExpired:
        raise FlashError(f"{cmd[0]} did not finish within an hour: {' '.join(cmd)}") from None
    if proc.returncode not in ok_codes:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-8:]
        raise FlashError(f"{what or cmd[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n  "
                         + "\n  ".join(tail))
    return proc


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Progress:
    """Progress of one long step on stderr: a live line on a terminal, quarter marks otherwise."""

    def __init__(self, label: str, total: int, stream=None):
        self.label, self.total = label, max(int(total), 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._shown = -1

    def update(self, done: int) -> None:
        pct = min(100, int(done * 100 / self.total))
        if self.tty:
            if pct != self._shown:
                rate = done / max(time.monotonic() - self.start, 1e-6)
                self.stream.write(f"\r{self.label}: {pct:3d}% ({human(done)} of "
                                  f"{human(self.total)}, {human(rate)}/s) ")
                self.stream.flush()
        elif pct // 25 != self._shown // 25 and pct < 100:
            self.stream.write(f"{self.label}: {pct}%\n")
        self._shown = pct

    def done(self) -> None:
        took = time.monotonic() - self.start
        end = "\r" if self.tty else ""
        self.stream.write(f"{end}{self.label}: done, {human(self.total)} in {took:.1f} s"
                          f"{' ' * 20 if self.tty else ''}\n")
        self.stream.flush()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

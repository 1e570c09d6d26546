"""The ext4 root filesystem, read and written with e2fsprogs' debugfs: no mount, no root.

`target` is a filesystem image file, or `IMG?offset=N` to read a partition in place
(e2fsprogs parses that suffix itself). Writes go to an extracted partition file only:
resizing or writing at an offset inside the whole image is what the issue warns about.
Owners and modes are always set explicitly, so the build user's uid never leaks in.
"""

import os
import stat
import tempfile
from dataclasses import dataclass, field

from .tools import FlashError, run

_BANNER = "debugfs "


@dataclass(frozen=True)
class Entry:
    """One directory entry as `ls -p` shows it."""

    ino: int
    mode: int                        # with the type bits, e.g. 0o100644
    uid: int
    gid: int
    size: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)


@dataclass
class Edits:
    """What to put into the filesystem; applied in one debugfs run by `ExtFS.apply`."""

    dirs: list[tuple[str, int, int, int]] = field(default_factory=list)       # path, mode, uid, gid
    files: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # path, local, mode, uid, gid
    links: list[tuple[str, str]] = field(default_factory=list)                # path, target
    removes: list[str] = field(default_factory=list)                          # files to delete

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self.dirs.append((path, mode, uid, gid))

    def file(self, path: str, local, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        self.files.append((path, str(local), mode, uid, gid))

    def link(self, path: str, target: str) -> None:
        self.links.append((path, target))

    def remove(self, path: str) -> None:
        self.removes.append(path)


def _q(path: str) -> str:
    if '"' in path or "\n" in path:
        raise FlashError(f"path not supported by debugfs (quote or newline): {path!r}")
    return f'"{path}"'


class ExtFS:
    """An ext4 filesystem in a file (or `IMG?offset=N` for reading)."""

    def __init__(self, target, epoch: int | None = None):
        self.target = str(target)
        self.epoch = epoch

    def _debugfs(self, commands: list[str], write: bool = False) -> tuple[str, list[str]]:
        with tempfile.NamedTemporaryFile("w", suffix=".debugfs", delete=False) as f:
            f.write("\n".join(commands) + "\n")
            script = f.name
        try:
            proc = run(["debugfs", *(["-w"] if write else []), "-f", script, self.target],
                       epoch=self.epoch, what="debugfs")
        finally:
            os.unlink(script)
        errors = [line for line in proc.stderr.decode(errors="replace").splitlines()
                  if line.strip() and not line.startswith(_BANNER)]
        return proc.stdout.decode(errors="replace"), errors

    def listdirs(self, dirs) -> dict[str, dict[str, Entry] | None]:
        """Entries of each directory (None if it does not exist), in one debugfs run."""
        dirs = list(dict.fromkeys(dirs))
        out, _ = self._debugfs([f"ls -p {_q(d)}" for d in dirs])
        result: dict[str, dict[str, Entry] | None] = {d: None for d in dirs}
        current = None
        for line in out.splitlines():
            if line.startswith("debugfs: ls -p "):
                current = line[len("debugfs: ls -p "):].strip().strip('"')
                continue
            parts = line.split("/")
            if current is None or len(parts) < 7 or parts[0] != "":
                continue
            _, ino, mode, uid, gid, name, size = parts[:7]
            if name in (".", ".."):
                result[current] = result[current] or {}
                continue
            entries = result[current] if result[current] is not None else {}
            entries[name] = Entry(int(ino), int(mode, 8), int(uid), int(gid), int(size or 0))
            result[current] = entries
        return result

    def stat(self, path: str) -> Entry | None:
        parent, name = os.path.split(path.rstrip("/"))
        if not name:
            return Entry(2, 0o40755, 0, 0, 0) if self.listdirs(["/"])["/"] is not None else None
        return (self.listdirs([parent or "/"])[parent or "/"] or {}).get(name)

    def read(self, path: str) -> bytes:
        """Contents of a regular file; FlashError if it is missing."""
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "out")
            _, errors = self._debugfs([f"dump {_q(path)} {_q(local)}"])
            if errors or not os.path.exists(local):
                raise FlashError(f"{self.target}: cannot read {path}: {'; '.join(errors) or 'missing'}")
            with open(local, "rb") as f:
                return f.read()

    def dump(self, pairs: list[tuple[str, str]]) -> list[str]:
        """Copy files out, (path in the filesystem, local path) each, in one run; the errors.
        Plain `dump`, not `rdump`/`dump -p`: those chown, which a normal user may not."""
        _, errors = self._debugfs([f"dump {_q(src)} {_q(dst)}" for src, dst in pairs])
        return errors

    def readlink(self, path: str) -> str | None:
        out, _ = self._debugfs([f"stat {_q(path)}"])
        for line in out.splitlines():
            if line.startswith("Fast link dest:"):
                return line.split(":", 1)[1].strip().strip('"')
        return None

    def apply(self, edits: Edits) -> None:
        """Create directories, replace files and links, set owners and modes; one debugfs run."""
        paths = ([p for p, *_ in edits.dirs] + [p for p, *_ in edits.files]
                 + [p for p, _ in edits.links] + edits.removes)
        parents = {os.path.dirname(p) or "/" for p in paths}
        listing = self.listdirs(sorted(parents))

        def exists(path: str) -> Entry | None:
            return (listing.get(os.path.dirname(path) or "/") or {}).get(os.path.basename(path))

        cmds = [f"rm {_q(path)}" for path in sorted(edits.removes) if exists(path)]
        for path, mode, uid, gid in sorted(edits.dirs, key=lambda d: d[0].count("/")):
            if not exists(path):
                cmds.append(f"mkdir {_q(path)}")
            cmds += _owner(path, stat.S_IFDIR | mode, uid, gid)
        for path, local, mode, uid, gid in sorted(edits.files):
            if exists(path):
                cmds.append(f"rm {_q(path)}")
            cmds.append(f"write {_q(local)} {_q(path)}")
            cmds += _owner(path, stat.S_IFREG | mode, uid, gid)
        for path, target in sorted(edits.links):
            if exists(path):
                cmds.append(f"rm {_q(path)}")
            cmds.append(f"symlink {_q(path)} {_q(target)}")
        _, errors = self._debugfs(cmds, write=True)
        if errors:
            raise FlashError(f"{self.target}: debugfs reported errors:\n  " + "\n  ".join(errors[:10]))


def _owner(path: str, mode: int, uid: int, gid: int) -> list[str]:
    p = _q(path)
    return [f"sif {p} mode 0{mode:o}", f"sif {p} uid {uid}", f"sif {p} gid {gid}"]


def fsck(target, *, fix: bool, epoch: int | None = None) -> str:
    """e2fsck -f; with `fix`, repairs (journal replay, counts); FlashError on damage left."""
    proc = run(["e2fsck", "-f", "-y" if fix else "-n", str(target)], epoch=epoch,
               ok_codes=(0, 1, 2, 4, 8, 12), what="e2fsck")
    text = proc.stdout.decode(errors="replace").strip()
    if proc.returncode >= 4 or (not fix and proc.returncode != 0):
        raise FlashError(f"{target}: e2fsck found errors (exit {proc.returncode}):\n  "
                         + "\n  ".join(text.splitlines()[-8:]))
    return text.splitlines()[-1] if text else ""


def resize(path, size_bytes: int, epoch: int | None = None) -> None:
    """Grow the filesystem in `path` (a partition file, never an offset) to `size_bytes`."""
    run(["resize2fs", str(path), f"{size_bytes // 1024}K"], epoch=epoch, what="resize2fs")


def superblock_wtime(img, offset: int) -> int:
    """The root filesystem's last write time (s_wtime), a date intrinsic to the base image."""
    with open(img, "rb") as f:
        f.seek(offset + 1024)
        sb = f.read(1024)
    if sb[0x38:0x3A] != b"\x53\xef":
        raise FlashError(f"{img}: partition 2 is not an ext2/3/4 filesystem (no superblock magic)")
    return int.from_bytes(sb[0x30:0x34], "little") | (sb[0x274] << 32)


def used_blocks(target) -> tuple[int, list[tuple[int, int]]]:
    """(block size, inclusive ranges of blocks in use: data, metadata, journal), per dumpe2fs."""
    out = run(["dumpe2fs", str(target)], what="dumpe2fs").stdout.decode(errors="replace")
    size = count = 0
    free: list[tuple[int, int]] = []
    for line in out.splitlines():
        if line.startswith("Block size:"):
            size = int(line.split(":")[1])
        elif line.startswith("Block count:"):
            count = int(line.split(":")[1])
        elif line.startswith("  Free blocks:"):
            for item in line.split(":", 1)[1].split(","):
                if item.strip():
                    a, _, b = item.strip().partition("-")
                    free.append((int(a), int(b or a)))
    if not size or not count:
        raise FlashError(f"{target}: dumpe2fs did not report the block size and count")
    used, pos = [], 0
    for a, b in sorted(free):
        if a > pos:
            used.append((pos, a - 1))
        pos = max(pos, b + 1)
    if pos < count:
        used.append((pos, count - 1))
    return size, used

"""Atomic file writes: temp file in the same directory, fsync, rename, fsync the dir.

A reader (or a power cut) sees either the old file or the whole new one, never a
truncated one. docs/contracts.md (data directory) requires this for everything in it.
"""

import contextlib
import errno
import logging
import os
import re
import shutil
from pathlib import Path

from glasses_firmware.drivers.errors import StorageFull

log = logging.getLogger(__name__)

# The temp files of this module (`.NAME.PID.tmp`) and of the camera's video encoder
# (`.NAME.part`): a power cut mid-write leaves one behind, and boot removes it.
STALE_TEMP = re.compile(r"^\..+\.(\d+\.tmp|part)$")
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def storage_full(path: str | os.PathLike, what: str = "file") -> StorageFull:
    """The one wording of a full disk: what was not saved, what is free, what to do."""
    path = Path(path)
    try:
        free_mb = shutil.disk_usage(path.parent if not path.is_dir() else path).free / 1e6
        free = f"{free_mb:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return StorageFull(errno.ENOSPC, f"the disk is full ({free}): {path.name} ({what}) was not "
                       "saved; delete photos, videos or recordings to make room")


def is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb"):
    """Open a temp file next to `path`; on clean exit it replaces `path` durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        f = open(tmp, mode)
    except OSError as e:
        if is_full(e):
            raise storage_full(path) from e
        raise
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as e:
        # Closing flushes what is buffered, which fails again on a full disk: the temp
        # file must go all the same.
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_full(e):
            raise storage_full(path) from e
        raise


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def fsync_dir(directory: str | os.PathLike) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(root: str | os.PathLike) -> list[Path]:
    """Remove the temp files a power cut left under `root` (ours only: STALE_TEMP); logged.

    Call at boot, before anything writes: a live writer's temp file would go too.
    """
    removed = []
    for parent, _, names in os.walk(root):
        for name in names:
            if STALE_TEMP.match(name):
                path = Path(parent) / name
                with contextlib.suppress(FileNotFoundError):
                    size = path.stat().st_size
                    path.unlink()
                    removed.append(path)
                    log.warning("removed %s (%d bytes), left by a power cut mid-write", path, size)
    return removed


def unused(path: str | os.PathLike) -> Path:
    """`path`, or `NAME-2.EXT`, `NAME-3.EXT`... if it is taken: a clock set back (a board
    with no RTC boots at its last saved time after a power cut) must not overwrite."""
    path = Path(path)
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate

"""The device key: 32 random bytes made on the first boot, kept outside the data directory.

Where it comes from is the board file's `[storage]` (boards/schema.py StorageSpec):

- `key_source = "otp"`: the CM4/CM5 customer OTP private key, read with
  `rpi-otp-private-key` (256 bits, hardware-backed, never on the card). If the tool is
  missing or the OTP key is not programmed (all zeros) the key file is used instead.
- `key_file`: the key file (64 hex digits and a newline, mode 0600), made once if
  missing. Empty: beside the data directory, `<parent>/.glasses-keys/<name>.key`, so a
  copy of the data directory alone carries no key (the sim's default).

A key is never replaced: losing it loses every sealed file, so making one only happens
where none exists, with O_EXCL and a hard link (two boots racing keep the first).
"""

import contextlib
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from glasses_firmware.drivers.atomic import fsync_dir
from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.drivers.sealed import KEY_BYTES, Sealer

log = logging.getLogger("glasses.key")

OTP_TOOL = "rpi-otp-private-key"
OTP_TIMEOUT_S = 10.0
KEY_DIR = ".glasses-keys"


def default_key_path(data_dir: str | os.PathLike) -> Path:
    """`<parent>/.glasses-keys/<name>.key` for a data dir (absolute, symlinks not followed)."""
    data = Path(os.path.abspath(data_dir))
    if not data.name:
        raise ConfigError(f"the data dir {data} has no parent to keep its key beside; "
                          "set storage.key_file in the board file")
    return data.parent / KEY_DIR / f"{data.name}.key"


def key_path(storage, data_dir) -> Path:
    """The key file a board uses for `data_dir`; ConfigError if it lies inside the data dir."""
    path = Path(storage.key_file) if storage.key_file else default_key_path(data_dir)
    data = Path(os.path.abspath(data_dir))
    if Path(os.path.abspath(path)).is_relative_to(data):
        raise ConfigError(f"storage.key_file {path} is inside the data dir {data}: a copy of the "
                          "data would carry its key; put it elsewhere (e.g. /etc/glasses/device.key)")
    return path


def parse_key(data: bytes, where: str) -> bytes:
    """64 hex digits (what this module and `rpi-otp-private-key` write), or 32 raw bytes."""
    text = data.strip()
    if re.fullmatch(rb"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text.decode())
    if len(data) == KEY_BYTES:
        return data
    raise ConfigError(f"{where}: not a device key (want 64 hex digits, as "
                      f"`{OTP_TOOL}` prints, or 32 bytes; got {len(data)} bytes)")


def read_key(path: str | os.PathLike) -> bytes:
    """The key in `path`; FileNotFoundError if there is none, ConfigError if it is not a key."""
    path = Path(path)
    data = path.read_bytes()
    return parse_key(data, str(path))


def create_key(path: str | os.PathLike, owner: tuple[int, int] | None = None) -> bytes:
    """Make the key file if there is none (mode 0600, `owner` (uid, gid) if given); the key."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        return read_key(path)
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True)
        if owner is not None:       # only a directory made here: never /etc/glasses itself
            os.chown(path.parent, *owner)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES).hex().encode() + b"\n")
        os.fsync(fd)
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)          # fails if another boot made one meanwhile: theirs stays
        log.warning("made a new device key %s: files sealed from now on need it", path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return read_key(path)


def _tighten(path: Path) -> None:
    # A key others can read is no key: say so, and close it if it is ours to close.
    mode = path.stat().st_mode
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); set to 0600", path, stat.S_IMODE(mode))
        with contextlib.suppress(PermissionError):
            os.chmod(path, 0o600)


def otp_key(tool: str = OTP_TOOL, timeout_s: float = OTP_TIMEOUT_S) -> tuple[bytes | None, str]:
    """(the OTP customer key, "") or (None, why not): tool missing, failing or key unset."""
    exe = shutil.which(tool)
    if exe is None:
        return None, f"{tool} is not installed"
    try:
        done = subprocess.run([exe], capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"{tool} did not answer within {timeout_s:g} s"
    except OSError as e:
        return None, f"{tool} could not run: {e}"
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        return None, f"{tool} failed ({err[-1] if err else f'exit {done.returncode}'})"
    try:
        key = parse_key(done.stdout, tool)
    except ConfigError as e:
        return None, str(e)
    if not any(key):
        return None, "the OTP customer key is not programmed (all zeros)"
    return key, ""


def device_sealer(storage, data_dir, create: bool = True,
                  owner: tuple[int, int] | None = None) -> Sealer:
    """The board's Sealer for `data_dir`: OTP if the board asks and it is there, else the
    key file (made now if `create` and missing). FileNotFoundError if there is no key and
    `create` is False; ConfigError if the file holds no key."""
    if storage.key_source == "otp":
        key, why = otp_key()
        if key is not None:
            return Sealer(key, "the OTP customer key")
        log.info("not using the OTP key (%s); using the key file", why)
    path = key_path(storage, data_dir)
    if not create:
        return Sealer(read_key(path), str(path))
    try:
        key = create_key(path, owner)
    except OSError as e:
        # On a board the firmware's user may not write /etc/glasses: the unit's root step
        # makes the key first. Never a traceback, and never a key somewhere else.
        raise ConfigError(f"cannot make the device key {path} ({e.strerror or e}): run "
                          "`python -m glasses_firmware.drivers.devicekey BOARD` as root once (glasses.service "
                          "does, before the firmware starts), or set storage.key_file") from None
    _tighten(path)
    return Sealer(key, str(path))


def sealer_for(data_dir) -> Sealer:
    """The Sealer of the key beside `data_dir` (the sim's default); FileNotFoundError if none."""
    path = default_key_path(data_dir)
    return Sealer(read_key(path), str(path))


def main(argv=None) -> int:
    """`python -m glasses_firmware.drivers.devicekey BOARD`: make the board's key file, owned by its service
    user, if it has none (glasses.service runs this as root before the firmware starts)."""
    import argparse
    import pwd

    from glasses_firmware import boards
    p = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    p.add_argument("board", help="board name or .toml path")
    p.add_argument("--data-dir", help="default: the board file's data_dir")
    a = p.parse_args(argv)
    try:
        config = boards.load(a.board)
        data_dir = a.data_dir or config.board.data_dir
        owner = None
        if config.service is not None and os.geteuid() == 0:
            entry = pwd.getpwnam(config.service.user)
            owner = (entry.pw_uid, entry.pw_gid)
        sealer = device_sealer(config.storage, data_dir, create=True, owner=owner)
    except (ConfigError, OSError, KeyError) as e:
        print(f"device key: error: {e}", file=sys.stderr)
        return 2
    print(f"device key: {sealer.source} (key id {sealer.key_id_hex})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

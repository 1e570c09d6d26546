"""Assemble the root filesystem edits: service user, units, wheels, models, board file, manifest."""

import json
import os
from pathlib import Path

from glasses_firmware.firmware import __version__

from . import rootfs
from .bootcfg import config_lines
from .extfs import Edits, ExtFS
from .tools import FlashError

ACCOUNT_FILES = ("passwd", "group", "shadow", "gshadow")


def _stage(stage: Path, name: str, text: str | bytes, epoch: int) -> Path:
    path = stage / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.utime(path, (epoch, epoch))
    return path


def populate(fs: ExtFS, board, *, stage: Path, epoch: int, wheels: list[Path], debs: list[Path] = (),
             models_dir: Path | None, model_hashes: dict[str, str], pin_hash: str,
             cloud_init: bool, base_info: dict) -> dict:
    """Apply every edit to the root filesystem in one debugfs run; returns the build manifest."""
    edits = Edits()
    account = _service_user(fs, board, edits, stage, epoch)
    manifest = _manifest(board, account, base_info=base_info, epoch=epoch, wheels=wheels, debs=debs,
                         model_hashes=model_hashes, pin_hash=pin_hash, cloud_init=cloud_init)
    # The image's own manifest is rendered here: device_keys_removed_from_base is only in the outer one.
    generated = _generated(board, manifest, pin_hash, with_models=models_dir is not None)
    _layout_edits(edits, board, generated, account, stage, epoch)
    _payload_edits(edits, wheels, debs)
    manifest["device_keys_removed_from_base"] = _remove_device_keys(fs, edits, board)
    _remove_stale_wheels(fs, edits, wheels)
    _model_edits(edits, models_dir, model_hashes)
    _link_units(edits, board)
    _add_missing_parents(fs, edits)
    fs.apply(edits)
    return manifest


def _service_user(fs: ExtFS, board, edits: Edits, stage: Path, epoch: int):
    """The service user and its groups added to the base's account files; returns its account."""
    service = board.service
    etc = fs.listdirs(["/etc"])["/etc"] or {}
    originals = {name: fs.read(f"/etc/{name}").decode() for name in ACCOUNT_FILES if name in etc}
    for name in ("passwd", "group"):
        if name not in originals:
            raise FlashError(f"the base image has no /etc/{name}; is it Raspberry Pi OS?")
    try:
        texts, account = rootfs.add_service_user(originals, service.user, service.groups,
                                                 board.board.data_dir, epoch)
    except ValueError as e:
        raise FlashError(str(e)) from None
    for name, text in texts.items():
        if text != originals.get(name):
            old = etc[name]
            edits.file(f"/etc/{name}", _stage(stage, f"etc/{name}", text, epoch),
                       old.mode & 0o7777, old.uid, old.gid)
    return account


def _manifest(board, account, *, base_info: dict, epoch: int, wheels: list[Path], debs: list[Path],
              model_hashes: dict[str, str], pin_hash: str, cloud_init: bool) -> dict:
    return {
        "format": 1,
        "firmware_version": __version__,
        "board": board.name,
        "base": base_info,
        "source_date_epoch": epoch,
        "python_abi": board.image.python_abi,
        "platform": board.image.platform,
        "config_txt": config_lines(board),
        "cmdline_remove": list(board.boot.cmdline_remove),
        "cmdline_add": list(board.boot.cmdline_add),
        "service": {"user": account.user, "uid": account.uid, "gid": account.gid,
                    "groups": account.group_ids},
        "wheels": {w.name: _sha(w) for w in wheels},
        "debs": {d.name: _sha(d) for d in debs},
        "models": model_hashes,
        "console_pin": bool(pin_hash),
        "cloud_init": cloud_init,
        "eeprom": dict(board.eeprom),
    }


def _generated(board, manifest: dict, pin_hash: str, *, with_models: bool) -> dict[str, str]:
    """The text of every file the image gets from us, by its path in the image."""
    service = board.service
    generated = {
        rootfs.UNIT: rootfs.unit_text(board, service.user, service.groups, with_models),
        rootfs.FIRSTBOOT_UNIT: rootfs.FIRSTBOOT_UNIT_TEXT,
        rootfs.NETALLOW_UNIT: rootfs.netallow_unit_text(board),
        rootfs.NETALLOW_PATH: rootfs.netallow_path_text(board),
        rootfs.FIRSTBOOT_SH: rootfs.FIRSTBOOT_SH_TEXT,
        rootfs.EEPROM_CONF: rootfs.eeprom_text(board),
        rootfs.WATCHDOG_CONF: rootfs.WATCHDOG_CONF_TEXT,
        rootfs.MANIFEST: json.dumps(manifest, indent=2, sort_keys=True) + "\n",
    }
    try:
        generated[rootfs.BOARD_TOML] = rootfs.board_toml_text(board, pin_hash)
    except ValueError as e:
        raise FlashError(str(e)) from None
    return generated


def _layout_edits(edits: Edits, board, generated: dict[str, str], account, stage: Path, epoch: int) -> None:
    """The directories and generated files of `rootfs.layout`, with their owners and modes."""
    ids = {"root": (0, 0), "service": (account.uid, account.gid)}
    for item in rootfs.layout(board):
        uid, _ = ids[item.owner]
        _, gid = ids[item.group]
        if item.kind == "d":
            edits.dir(item.path, item.mode, uid, gid)
        else:
            edits.file(item.path, _stage(stage, item.path.lstrip("/"), generated[item.path], epoch),
                       item.mode, uid, gid)


def _payload_edits(edits: Edits, wheels: list[Path], debs: list[Path]) -> None:
    edits.dir(rootfs.WANTS)
    edits.dir(os.path.dirname(rootfs.WATCHDOG_CONF))
    for w in wheels:
        edits.file(f"{rootfs.WHEELS}/{w.name}", w.resolve(), 0o644)
    for d in debs:
        edits.file(f"{rootfs.DEBS}/{d.name}", d.resolve(), 0o644)


def _remove_device_keys(fs: ExtFS, edits: Edits, board) -> list[str]:
    """The base's device keys removed; returns their paths."""
    # A base taken from a used card carries its device key: every card made from this image
    # would then share it. The first boot makes a fresh one (glasses.service ExecStartPre).
    key_dir, key_names = rootfs.key_files(board)
    keys = sorted(n for n in (fs.listdirs([key_dir])[key_dir] or {})
                  if rootfs.is_key_name(n, key_names))
    for name in keys:
        edits.remove(f"{key_dir}/{name}")
    return [f"{key_dir}/{n}" for n in keys]


def _remove_stale_wheels(fs: ExtFS, edits: Edits, wheels: list[Path]) -> None:
    stale = fs.listdirs([rootfs.WHEELS])[rootfs.WHEELS] or {}      # a base that was built before
    for name in sorted(set(stale) - {w.name for w in wheels}):
        edits.remove(f"{rootfs.WHEELS}/{name}")


def _model_edits(edits: Edits, models_dir: Path | None, model_hashes: dict[str, str]) -> None:
    # Each model directory once, parents first (debugfs refuses to make one twice).
    model_dirs = sorted({"/".join(rel.split("/")[:i]) for rel in model_hashes
                         for i in range(1, rel.count("/") + 1)})
    for sub in model_dirs:
        edits.dir(f"{rootfs.MODELS}/{sub}")
    for rel in sorted(model_hashes):
        edits.file(f"{rootfs.MODELS}/{rel}", (models_dir / rel).resolve(), 0o644)


def _link_units(edits: Edits, board) -> None:
    """The units enabled, and the serial getty masked (the UART is the glasses' console)."""
    for unit in (rootfs.UNIT, rootfs.FIRSTBOOT_UNIT, rootfs.NETALLOW_PATH):
        edits.link(f"{rootfs.WANTS}/{os.path.basename(unit)}", unit)
    edits.link(rootfs.getty_unit(board), "/dev/null")


def _add_missing_parents(fs: ExtFS, edits: Edits) -> None:
    """Directories above the edited paths that the base lacks (e.g. /var/lib on a bare root)."""
    planned = {p for p, *_ in edits.dirs}
    paths = planned | {p for p, *_ in edits.files} | {p for p, _ in edits.links}
    ancestors = set()
    for p in paths:
        d = os.path.dirname(p)
        while d not in ("/", ""):
            ancestors.add(d)
            d = os.path.dirname(d)
    ancestors -= planned
    if not ancestors:
        return
    listing = fs.listdirs(sorted({os.path.dirname(a) for a in ancestors}))
    for a in sorted(ancestors):
        if a not in (listing.get(os.path.dirname(a)) or {}):
            edits.dir(a)
        elif not (listing[os.path.dirname(a)][os.path.basename(a)]).is_dir:
            raise FlashError(f"{a} in the base image is not a directory")


def _sha(path: Path) -> str:
    from .models import sha256
    return sha256(path)

"""The `flash.sh` command line (run as `python -m glasses_firmware.image`). Only this module parses arguments.

Exit status: 0 done, 1 verify found a failing check, 2 refused or failed (the message
says why and what to do), 130 interrupted.
"""

import argparse
import json
import sys
from pathlib import Path

from glasses_firmware import boards
from .tools import FlashError


def _board_for_image(args) -> str:
    if args.board:
        return args.board
    manifest = Path(f"{args.image}.manifest.json")
    if manifest.exists():
        return json.loads(manifest.read_text())["board"]
    raise FlashError(f"give --board: {manifest.name} (written by build) is not next to the image")


def cmd_fetch(args) -> int:
    from .fetch import fetch
    fetch(boards.load(args.board), Path(args.dest), dry_run=args.dry_run)
    return 0


def _models_for_build(args) -> Path | None:
    """--models DIR; else the installed default models (`glasses models install`), said so."""
    from .tools import say
    if args.models and args.no_models:
        raise FlashError("give --models DIR or --no-models, not both")
    if args.models:
        return Path(args.models)
    if args.no_models:
        return None
    from glasses_firmware.models.manifest import default_models_dir
    found = default_models_dir()
    if found is None:
        say("build: no --models given and no installed models (`glasses models install` makes "
            "them); the image carries none")
    else:
        say(f"build: no --models given: the image carries the installed models in {found} "
            "(--no-models leaves them out)")
    return found


def cmd_build(args) -> int:
    from .build import BuildOptions, build
    opt = lambda v: Path(v) if v else None  # noqa: E731
    build(BuildOptions(board=args.board, base=Path(args.base), out=Path(args.out).absolute(),
                       models=_models_for_build(args), secrets=opt(args.secrets), wheels=opt(args.wheels), debs=opt(args.debs),
                       grow_mb=args.grow_mb, dry_run=args.dry_run, keep_work=args.keep_work))
    return 0


def cmd_verify(args) -> int:
    from .verify import verify
    if args.dry_run:
        print("verify only reads the image; --dry-run changes nothing", file=sys.stderr)
    return 0 if verify(Path(args.image), args.board) else 1


def _limit(board_name: str | None) -> int | None:
    if not board_name:
        return None
    board = boards.load(board_name)
    if board.image is None:
        raise FlashError(f"board {board.name} has no [image] table, so no device size limit")
    return board.image.max_device_gb * 10**9


def cmd_list_devices(args) -> int:
    from .devices import list_devices
    return list_devices(_limit(args.board))


def cmd_write(args) -> int:
    from .devices import write
    write(Path(args.image), args.device, _limit(_board_for_image(args)), yes=args.yes,
          dry_run=args.dry_run, target_file=Path(args.target_file) if args.target_file else None,
          no_bmap=args.no_bmap)
    return 0


def cmd_rpiboot(args) -> int:
    from .usbboot import rpiboot
    return rpiboot(boards.load(args.board), Path(args.usbboot_dir) if args.usbboot_dir else None,
                   dry_run=args.dry_run)


def cmd_base(args) -> int:
    from .base import ensure
    print(ensure(rebuild=args.rebuild))
    return 0


def cmd_boot_test(args) -> int:
    from .boottest import boot_test
    if args.dry_run:
        print("boot-test would build (or reuse) the base and the image, then boot it under "
              "qemu-system-aarch64", file=sys.stderr)
        return 0
    boot_test(args.board, Path(args.image) if args.image else None,
              Path(args.work) if args.work else None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flash.sh", description="Build, verify and write the glasses' "
                                "SD/eMMC image: rootless, no loop devices.")
    sub = p.add_subparsers(dest="command", required=True)
    dry = argparse.ArgumentParser(add_help=False)
    dry.add_argument("--dry-run", action="store_true", help="check and say what would happen; change nothing")

    f = sub.add_parser("fetch", parents=[dry], help="download the board's Raspberry Pi OS base image")
    f.add_argument("--board", required=True)
    f.add_argument("--dest", default=".", help="directory for the download (default: .)")
    f.set_defaults(func=cmd_fetch)

    ba = sub.add_parser("base", parents=[dry], help="make (or reuse) the Raspberry Pi OS-like arm64 base "
                        "from Debian bookworm packages, for boot-test")
    ba.add_argument("--rebuild", action="store_true", help="build again even if the inputs are unchanged")
    ba.set_defaults(func=cmd_base)

    bt = sub.add_parser("boot-test", parents=[dry], help="boot the image on QEMU's arm64 virt machine and "
                        "use it over its UART (docs/flash.md)")
    bt.add_argument("image", nargs="?", help="built image (default: build the base and the image)")
    bt.add_argument("--board", required=True)
    bt.add_argument("--work", help="work directory (default: build/boot-test)")
    bt.set_defaults(func=cmd_boot_test)

    b = sub.add_parser("build", parents=[dry], help="build the image from a base image")
    b.add_argument("--board", required=True, help="board name (cm5-ref, cm4-ref) or .toml path")
    b.add_argument("--base", required=True, help="Raspberry Pi OS Lite arm64 image, .img or .img.xz")
    b.add_argument("--out", required=True, help="output image; OUT.sha256, OUT.bmap, OUT.manifest.json beside it")
    b.add_argument("--models", help="models directory, checked against its manifest.toml "
                   "(default: the installed one, models/installed, if `glasses models install` made it)")
    b.add_argument("--no-models", action="store_true", help="carry no models, even if some are installed")
    b.add_argument("--secrets", help="TOML with the console pin and optional wifi / ssh settings")
    b.add_argument("--wheels", help="directory of ready aarch64 wheels (default: build and download)")
    b.add_argument("--debs", help="directory of ready .debs for the board (default: downloaded "
                   "with the wheels; with --wheels and no --debs, none)")
    b.add_argument("--grow-mb", type=int, help="grow the root by this much (default: payload + 256 MiB)")
    b.add_argument("--keep-work", action="store_true", help="keep the work directory (debugging)")
    b.set_defaults(func=cmd_build)

    v = sub.add_parser("verify", parents=[dry], help="check a built image, one line per check")
    v.add_argument("image")
    v.add_argument("--board", required=True)
    v.set_defaults(func=cmd_verify)

    ld = sub.add_parser("list-devices", parents=[dry], help="block devices and whether they may be written")
    ld.add_argument("--board", help="apply this board's device size limit")
    ld.set_defaults(func=cmd_list_devices)

    w = sub.add_parser("write", parents=[dry], help="write an image to a removable device and read it back")
    w.add_argument("image")
    w.add_argument("--device", required=True, help="whole disk, e.g. /dev/sdb or sdb")
    w.add_argument("--board", help="board whose size limit applies (default: from the build manifest)")
    w.add_argument("--yes", action="store_true", help="do not ask to retype the device name")
    w.add_argument("--no-bmap", action="store_true", help="write every byte with dd even if bmaptool is here")
    w.add_argument("--target-file", help="check DEVICE but write the bytes to this file (tests)")
    w.set_defaults(func=cmd_write)

    r = sub.add_parser("rpiboot", parents=[dry], help="make a Compute Module's eMMC a USB disk (usbboot)")
    r.add_argument("--board", required=True)
    r.add_argument("--usbboot-dir", help="usbboot checkout or install holding mass-storage-gadget64")
    r.set_defaults(func=cmd_rpiboot)
    return p


def main(argv=None) -> int:
    from glasses_firmware.firmware.cli import run_cli
    return run_cli(build_parser(), argv)

"""`flash.sh rpiboot --board B`: expose a Compute Module's eMMC as a USB disk through usbboot.

After rpiboot finishes the eMMC shows up as a removable USB disk: `flash.sh
list-devices`, then `flash.sh write`. The CM5 (and the CM4 with current usbboot) need
the mass-storage-gadget64 boot files; older CM4 setups use rpiboot's built-in msd.
"""

import subprocess
from pathlib import Path

from .tools import FlashError, require, say, tool_env

USBBOOT_DIRS = (Path("/usr/share/rpiboot"), Path("/usr/local/share/rpiboot"))
GADGET = "mass-storage-gadget64"


def command(board, usbboot_dir: Path | None) -> list[str]:
    rpiboot = require("rpiboot")["rpiboot"]
    dirs = [usbboot_dir] if usbboot_dir else list(USBBOOT_DIRS)
    gadget = next((d / GADGET for d in dirs if (d / GADGET).is_dir()), None)
    if gadget is not None:
        return [rpiboot, "-d", str(gadget)]
    if board.board.module == "cm4":
        return [rpiboot]
    raise FlashError(f"no {GADGET} directory in {', '.join(map(str, dirs))}; the {board.board.module} "
                     "needs it: give --usbboot-dir with a checkout of the raspberrypi/usbboot repository")


def rpiboot(board, usbboot_dir: Path | None = None, dry_run: bool = False) -> int:
    if board.board.module not in ("cm4", "cm5"):
        raise FlashError(f"board {board.name} is a {board.board.module}; rpiboot is for Compute Modules")
    cmd = command(board, usbboot_dir)
    say("rpiboot: fit the EMMC-disable / nRPIBOOT jumper, connect the carrier's USB port, power it on")
    if dry_run:
        say(f"rpiboot (dry run): would run: {' '.join(cmd)}")
        return 0
    proc = subprocess.run(cmd, env=tool_env(), timeout=600)
    if proc.returncode != 0:
        raise FlashError(f"rpiboot failed (exit {proc.returncode}); check the jumper and the USB cable "
                         "(rpiboot needs root or a udev rule for the Broadcom USB device)")
    say("rpiboot: done; the eMMC is now a USB disk: run `flash.sh list-devices`, then `flash.sh write`")
    return 0

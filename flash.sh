#!/usr/bin/env bash
# Build, verify and write the glasses' SD/eMMC image: rootless, without loop devices.
#
#   ./flash.sh fetch        --board cm5-ref [--dest DIR]
#   ./flash.sh build        --board cm5-ref --base IMG[.xz] --out OUT.img
#                           [--models DIR] [--secrets FILE] [--wheels DIR] [--grow-mb N]
#   ./flash.sh verify       OUT.img --board cm5-ref
#   ./flash.sh list-devices [--board cm5-ref]
#   ./flash.sh write        OUT.img --device /dev/sdX [--yes] [--no-bmap] [--target-file F]
#   ./flash.sh rpiboot      --board cm5-ref [--usbboot-dir DIR]
#
# Every command takes --dry-run. The work is done by the Python package image/ (see
# docs/flash.md); this script finds the project's Python and hands over.
set -euo pipefail

# Only bash builtins until Python runs, so a bare PATH still reaches the tool checks.
src=${BASH_SOURCE[0]}
case $src in */*) dir=${src%/*} ;; *) dir=. ;; esac
here=$(cd "$dir" && pwd)

python=${GLASSES_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then
    python="$here/.venv/bin/python"
  else
    python=$(command -v python3 || true)
  fi
fi
if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "flash.sh: error: needs Python 3.11 or newer; run ./scripts/setup.sh first" >&2
  exit 2
fi

export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m glasses_firmware.image "$@"

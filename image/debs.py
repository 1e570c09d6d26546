"""The system packages the firmware needs that the base image lacks, as .debs for the board.

Raspberry Pi OS Lite has no PortAudio, espeak-ng or the GL/GLib libraries OpenCV's wheel
loads; a Debian base has none of them either. The build resolves what is missing with the
host's apt against the image's own dpkg status and its own package sources and keys
(architecture from the board's wheel platform), downloads the .debs (the only networked
part, at build time), and the first boot installs them with dpkg, offline.
"""

import os
import shutil
import subprocess
from pathlib import Path

from .extfs import ExtFS
from .tools import FlashError, require, say, tool_env

# Debian package -> what needs it (firmware/voice, firmware/worker/tts, drivers/audio)
SYSTEM_PACKAGES = {
    "libportaudio2": "sounddevice (microphones and speaker)",
    "espeak-ng": "the fallback voice and the Piper voice's phonemes",
    "libgl1": "opencv-python (face blurring, reading text)",
    "libglib2.0-0": "opencv-python",
}
ARCH = {"aarch64": "arm64", "armv7l": "armhf", "x86_64": "amd64"}


def arch_of(platform: str) -> str:
    machine = platform.split("_", 3)[-1] if platform.startswith("manylinux_") else platform
    if machine not in ARCH:
        raise FlashError(f"no Debian architecture for the wheel platform {platform}")
    return ARCH[machine]


def _sources(fs: ExtFS, work: Path) -> tuple[Path, Path]:
    """The image's apt sources and keys, copied out, keys' paths pointed at the copies."""
    etc = work / "etc"
    keys = work / "keys"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "trusted.gpg.d").mkdir()
    keys.mkdir()
    pairs = []
    if fs.stat("/etc/apt/sources.list") is not None:
        pairs.append(("/etc/apt/sources.list", str(etc / "sources.list")))
    for folder, local in (("/etc/apt/sources.list.d", etc / "sources.list.d"),
                          ("/etc/apt/trusted.gpg.d", etc / "trusted.gpg.d"),
                          ("/usr/share/keyrings", keys)):
        for name, entry in sorted((fs.listdirs([folder])[folder] or {}).items()):
            if not entry.is_dir and not entry.is_link and name not in (".", ".."):
                pairs.append((f"{folder}/{name}", str(local / name)))
    errors = fs.dump(pairs)
    if errors:
        raise FlashError("reading the image's apt sources: " + "; ".join(errors))
    for f in [etc / "sources.list", *sorted((etc / "sources.list.d").iterdir())]:
        if f.exists():
            f.write_text(f.read_text().replace("/usr/share/keyrings/", f"{keys}/"))
    if not any(p.exists() for p in [etc / "sources.list", *(etc / "sources.list.d").iterdir()]):
        raise FlashError("the base image has no apt sources (/etc/apt/sources.list); "
                         "cannot find its system packages")
    return etc, keys


def fetch(fs: ExtFS, dest: Path, work: Path, platform: str) -> list[Path]:
    """Download the .debs of SYSTEM_PACKAGES (and their dependencies) the image lacks."""
    apt = require("apt-get")["apt-get"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    etc, _ = _sources(fs, work)
    status = work / "status"
    status.write_bytes(fs.read("/var/lib/dpkg/status"))
    (work / "lists/partial").mkdir(parents=True)
    (work / "cache/archives/partial").mkdir(parents=True)
    arch = arch_of(platform)
    opts = ["-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}",
            "-o", f"Dir::State::status={status}", "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}", "-o", f"Dir::Etc::SourceList={etc / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={etc / 'sources.list.d'}",
            "-o", f"Dir::Etc::TrustedParts={etc / 'trusted.gpg.d'}",
            "-o", "Dir::Etc::Trusted=/nonexistent", "-o", "Dir::Etc::Preferences=/nonexistent",
            "-o", "Dir::Etc::PreferencesParts=/nonexistent", "-o", "APT::Install-Recommends=false",
            "-o", "Debug::NoLocking=true", "-o", "APT::Sandbox::User=root", "-q"]
    say(f"build: system packages for {arch}: {', '.join(SYSTEM_PACKAGES)} (those the base lacks)")
    env = dict(tool_env(), DEBIAN_FRONTEND="noninteractive")
    for args in (["update"], ["install", "-y", "--download-only", *SYSTEM_PACKAGES]):
        proc = subprocess.run([apt, *opts, *args], capture_output=True, text=True, env=env, timeout=1800)
        if proc.returncode != 0:
            tail = "\n  ".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise FlashError(f"apt-get {args[0]} for the image's system packages failed:\n  {tail}")
    dest.mkdir(parents=True, exist_ok=True)
    debs = []
    for deb in sorted((work / "cache/archives").glob("*.deb")):
        target = dest / deb.name
        os.replace(deb, target)
        debs.append(target)
    say(f"build: {len(debs)} system package(s) to install on the first boot")
    return debs

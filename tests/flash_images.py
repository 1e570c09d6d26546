"""The flash.sh tests' inputs and tools: a synthesized base image, wheels, models, secrets.

A small Raspberry-Pi-OS-like base image is synthesized once per test module (MBR, FAT32
boot with config.txt and cmdline.txt, ext4 root made with mkfs.ext4 -d). Wheels are a real
build of this project plus a hand-made aarch64 wheel, so no test touches the network.
`flash()` runs flash.sh; `mtype()`, `debugfs()` and `inode()` read what an image holds,
rootless and without loop devices.
"""

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLASH = ROOT / "flash.sh"
FAKES = ROOT / "tests" / "flash_fakes"
BASH = shutil.which("bash") or "/bin/bash"
SBIN = os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
NEEDED = ["sfdisk", "mcopy", "mkfs.vfat", "fsck.vfat", "mkfs.ext4", "debugfs", "e2fsck", "resize2fs"]
MISSING = [t for t in NEEDED if not shutil.which(t, path=os.environ.get("PATH", "") + SBIN)]
needs_image_tools = pytest.mark.skipif(
    bool(MISSING), reason=f"image tools missing: {', '.join(MISSING)} "
    "(./scripts/setup.sh installs fdisk, mtools, dosfstools, e2fsprogs)")

MIB = 1 << 20
BOOT_START, BOOT_SECTORS, ROOT_SECTORS = 8192, 131072, 131072       # 64 MiB + 64 MiB
DISK_ID = "0x5ca1ab1e"
EPOCH = 1_700_000_000
BASE_CONFIG = "# base config.txt\ndtparam=audio=on\ncamera_auto_detect=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n[all]\n"
BASE_CMDLINE = (f"console=serial0,115200 console=tty1 root=PARTUUID={DISK_ID[2:]}-02 rootfstype=ext4 "
                "fsck.repair=yes rootwait\n")
GROUPS = {"root": 0, "dialout": 20, "audio": 29, "video": 44, "shadow": 42, "gpio": 986,
          "i2c": 994, "bluetooth": 112, "systemd-journal": 999}
SECRETS = """pin = "2468"
hostname = "glasses-test"
[wifi]
ssid = "Test Net"
password = "not a real password"
country = "GB"
[ssh]
user = "admin"
authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITestKeyOnly admin@laptop"]
"""


def tool(name):
    return shutil.which(name, path=os.environ.get("PATH", "") + SBIN)


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=120, **kw)


def flash(*args, env=None, input=None, timeout=180):
    full_env = dict(os.environ, SOURCE_DATE_EPOCH=str(EPOCH), **(env or {}))
    return subprocess.run([BASH, str(FLASH), *map(str, args)], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout)


def make_base(d: Path) -> Path:
    """A Raspberry-Pi-OS-shaped image file: MBR, FAT32 boot, ext4 root; no root, no loop."""
    tree = d / "rootfs"
    for sub in ("etc/systemd/system/multi-user.target.wants", "opt", "var/lib", "usr/lib",
                "usr/sbin", "home"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                     "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                                     "systemd-journal:x:999:999::/:/usr/sbin/nologin\n")
    (tree / "etc/group").write_text("".join(f"{g}:x:{i}:\n" for g, i in GROUPS.items()))
    (tree / "etc/shadow").write_text("root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    (tree / "etc/gshadow").write_text("".join(f"{g}:*::\n" for g in GROUPS))
    os.chmod(tree / "etc/shadow", 0o640)
    os.chmod(tree / "etc/gshadow", 0o640)
    (tree / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    (tree / "etc/os-release").symlink_to("../usr/lib/os-release")
    for p in tree.rglob("*"):
        os.utime(p, (EPOCH, EPOCH), follow_symlinks=False)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(EPOCH), PATH=os.environ["PATH"] + SBIN)
    rootfs = d / "root.ext4"
    uuid = "5ca1ab1e-0000-4000-8000-000000000001"
    sh("mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "rootfs", "-U", uuid, "-E",
       f"hash_seed={uuid},root_owner=0:0", "-d", tree, rootfs, f"{ROOT_SECTORS // 2}K", env=env)
    img = d / "base.img"
    with open(img, "wb") as f:
        f.truncate((BOOT_START + BOOT_SECTORS + ROOT_SECTORS) * 512)
    layout = (f"label: dos\nlabel-id: {DISK_ID}\nunit: sectors\n\n"
              f"start={BOOT_START}, size={BOOT_SECTORS}, type=c\n"
              f"start={BOOT_START + BOOT_SECTORS}, size={ROOT_SECTORS}, type=83\n")
    sh("sfdisk", "-q", img, input=layout.encode(), env=env)
    sh("mkfs.vfat", "-F", "32", "-s", "1", "-n", "BOOTFS", "-i", "5CA1AB1E", "--offset",
       str(BOOT_START), img, str(BOOT_SECTORS // 2), env=env)
    for name, text in (("config.txt", BASE_CONFIG), ("cmdline.txt", BASE_CMDLINE)):
        (d / name).write_text(text)
        sh("mcopy", "-m", "-i", f"{img}@@{BOOT_START * 512}", d / name, f"::/{name}",
           env=dict(env, MTOOLS_SKIP_CHECK="1"))
    with open(rootfs, "rb") as src, open(img, "r+b") as dst:
        dst.seek((BOOT_START + BOOT_SECTORS) * 512)
        shutil.copyfileobj(src, dst)
    return img


def fake_wheel(d: Path, filename: str) -> Path:
    name, version = filename.split("-")[:2]
    path = d / filename
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{name}-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
        z.writestr(f"{name}-{version}.dist-info/RECORD", "")
    return path


def firmware_wheel(d: Path) -> Path:
    """This project's own wheel, built the way `flash.sh build` builds it."""
    from glasses_firmware.image.wheels import build_firmware
    return build_firmware(ROOT, d)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """What a build takes (base image, wheels, models, secrets), made once per test module."""
    d = tmp_path_factory.mktemp("flash")
    wheel_dir = d / "wheels"
    wheel_dir.mkdir()
    firmware_wheel(wheel_dir)
    fake_wheel(wheel_dir, "numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl")
    fake_wheel(wheel_dir, "smbus2-0.5.0-py2.py3-none-any.whl")
    models = d / "models"
    (models / "vad").mkdir(parents=True)
    (models / "vad" / "silero.onnx").write_bytes(b"not a real model" * 64)
    (models / "vad" / "silero.onnx.json").write_text("{}\n")   # two files in one model directory
    digest = hashlib.sha256(b"not a real model" * 64).hexdigest()
    (models / "manifest.toml").write_text(f'[vad]\nfile = "vad/silero.onnx"\nsha256 = "{digest}"\n')
    (d / "secrets.toml").write_text(SECRETS)
    return {"dir": d, "base": make_base(d), "wheels": wheel_dir, "models": models,
            "secrets": d / "secrets.toml"}


def build_args(inputs, out, *extra):
    return ["build", "--board", "cm5-ref", "--base", inputs["base"], "--out", out,
            "--wheels", inputs["wheels"], "--models", inputs["models"], "--secrets", inputs["secrets"],
            "--grow-mb", "64", *extra]


def mtype(img, name, offset=BOOT_START * 512):
    return sh("mtype", "-i", f"{img}@@{offset}", f"::/{name}",
              env=dict(os.environ, MTOOLS_SKIP_CHECK="1")).stdout.decode()


def root_offset(img):
    table = json.loads(sh(tool("sfdisk"), "--json", img).stdout)["partitiontable"]
    return table["partitions"][1]["start"] * 512, table


def debugfs(img, command):
    offset, _ = root_offset(img)
    return sh(tool("debugfs"), "-R", command, f"{img}?offset={offset}").stdout.decode()


def inode(img, path):
    """(permission bits, uid, gid) of a path in the image's root, from debugfs stat."""
    text = debugfs(img, f"stat {path}")
    mode = int(text.split("Mode:")[1].split()[0], 8)
    uid = int(text.split("User:")[1].split()[0])
    gid = int(text.split("Group:")[1].split()[0])
    return mode, uid, gid

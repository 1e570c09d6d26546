"""The pieces of `flash.sh base` and `flash.sh boot-test` that run without QEMU or root
(the boot itself is `./flash.sh boot-test --board cm5-ref`, docs/flash.md)."""

import dataclasses

import pytest

from glasses_firmware.image import base, boottest, debs
from glasses_firmware.image.tools import FlashError


def test_the_base_is_rebuilt_when_its_inputs_change():
    spec = base.BaseSpec()
    assert spec.key("image") == base.BaseSpec().key("image")          # stable between runs
    more = dataclasses.replace(spec, packages=(*spec.packages, "sudo"))
    assert more.key("tar") != spec.key("tar") and more.key("image") != spec.key("image")
    later = dataclasses.replace(spec, epoch=spec.epoch + 1)             # only the packing changes
    assert later.key("tar") == spec.key("tar") and later.key("image") != spec.key("image")
    assert base.base_path(spec) != base.base_path(more)


def test_the_debian_architecture_comes_from_the_wheel_platform():
    assert debs.arch_of("manylinux_2_36_aarch64") == "arm64"
    assert debs.arch_of("manylinux_2_17_x86_64") == "amd64"
    with pytest.raises(FlashError, match="no Debian architecture"):
        debs.arch_of("macosx_11_0_arm64")


def test_the_kernel_gets_the_images_cmdline_with_the_uart_named_as_the_pi_firmware_names_it():
    got = boottest.qemu_cmdline("console=serial0,115200 root=PARTUUID=3ef153c7-02 rootfstype=ext4 "
                                "fsck.repair=yes rootwait\n")
    tokens = got.split()
    assert tokens[:5] == ["console=ttyAMA0,115200", "root=PARTUUID=3ef153c7-02", "rootfstype=ext4",
                          "fsck.repair=yes", "rootwait"]
    assert [t for t in tokens if t.startswith("console=")][-1] == f"console={boottest.LOG_CONSOLE},115200"
    with pytest.raises(FlashError, match="2 lines"):
        boottest.qemu_cmdline("a\nb\n")


def test_unit_lines_pick_the_failing_units_journal():
    log = ("[ 1.0] systemd[1]: Starting glasses-firstboot.service\n"
           "[ 2.0] firstboot.sh[288]: ERROR: No space left on device\n"
           "[ 3.0] kernel: unrelated\n")
    assert boottest._unit_lines(log, "glasses-firstboot.service") == log.splitlines()[:2]

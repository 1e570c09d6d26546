"""The reference board's firmware on a machine without its hardware (QEMU's virt machine,
a laptop): every missing endpoint reported with the reason, the firmware running on, its
console on a serial port. `flash.sh boot-test` shows the same on arm64 (docs/flash.md)."""

import subprocess
from pathlib import Path

import pytest

from tests.conftest import GLASSES, ROOT, RunningFirmware
from tests.nullmodem import NullModem

pytestmark = pytest.mark.skipif(Path("/dev/i2c-1").exists(), reason="this machine has an I2C bus 1")


def test_selftest_reports_what_this_machine_lacks(tmp_path):
    r = subprocess.run(GLASSES + ["selftest", "--board", "cm5-ref", "--json", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr                     # required devices are missing
    import json
    rows = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
    assert rows["imu"]["missing"] and "/dev/i2c-1" in rows["imu"]["detail"]
    assert "dtparam=i2c_arm=on" in rows["fuel_gauge"]["detail"]
    assert rows["microphones"]["missing"] and "googlevoicehat" in rows["microphones"]["detail"]
    assert rows["camera"]["missing"] and "camera" in rows["camera"]["detail"]
    assert all(not d["ok"] for d in rows.values() if d["missing"])
    assert "I2C bus 1 is missing" in r.stderr             # said once, at bring-up


def test_the_firmware_runs_degraded_with_its_console_on_a_serial_port(tmp_path):
    cable = NullModem(tmp_path / "ttyAMA0", tmp_path / "host-tty")
    try:
        fw = RunningFirmware(tmp_path, board="cm5-ref", console=tmp_path / "ttyAMA0",
                             host_port=tmp_path / "host-tty")
        try:
            assert fw.cmd("version").lines[0].startswith("glasses ")
            status = fw.cmd("status --json").json()
            assert status["lifecycle"] == "running"
            assert set(status["missing"]) >= {"i2c", "audio", "camera"}
            # No IMU: wear cannot be sensed, so the glasses count as worn, not asleep.
            assert status["worn"] and status["mode"] != "SLEEP"
            text = fw.cmd("status").lines
            assert any(line.startswith("missing      i2c:") for line in text)
            # The speaker is missing: a cue or answer is not spoken, nothing crashes.
            r = fw.cmd("ask what is the capital of France?")
            assert "SLEEP" not in (r.error or "")
            assert fw.cmd("status --json").json()["lifecycle"] == "running"
        finally:
            code = fw.stop()
        assert code == 0, (tmp_path / "stdout.txt").read_text()[-2000:]
    finally:
        cable.close()

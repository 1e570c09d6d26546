"""The command line on the sim board, as a user runs it."""

import json
import os
import re
import signal
import subprocess

import pytest

from tests.conftest import GLASSES, ROOT, RunningFirmware

DEVICES = {"imu", "fuel_gauge", "camera", "microphones", "speaker", "buttons", "leds"}


def glasses(*args, timeout=60):
    return subprocess.run(GLASSES + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_selftest_json_all_ok(tmp_path):
    r = glasses("selftest", "--board", "sim", "--data-dir", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows = {d["device"]: d for d in report["devices"]}
    assert DEVICES <= set(rows)
    assert all(rows[d]["ok"] for d in DEVICES), rows
    assert report["ok"] is True


@pytest.mark.parametrize("fault", ["nack", "timeout", "garbage", "gone"])
@pytest.mark.parametrize("device", ["imu", "fuel_gauge", "camera", "microphones"])
def test_selftest_fault_fails_that_row_with_one_line(tmp_path, device, fault):
    r = glasses("selftest", "--board", "sim", "--data-dir", str(tmp_path), "--json",
                "--sim-fault", f"{device}={fault}")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout
    rows = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
    assert not rows[device]["ok"]
    assert "\n" not in rows[device]["detail"] and rows[device]["detail"]
    assert all(rows[d]["ok"] for d in DEVICES - {device})


def test_selftest_table_and_bad_board(tmp_path):
    r = glasses("selftest", "--board", "sim", "--data-dir", str(tmp_path))
    assert r.returncode == 0
    assert re.search(r"^imu\s+ok\s+LSM6DSOX", r.stdout, re.M)
    r = glasses("selftest", "--board", "nope")
    assert r.returncode == 2 and "unknown board 'nope'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_idles_and_stops_cleanly(tmp_path, sig):
    fw = RunningFirmware(tmp_path)
    assert fw.cmd("version").lines[0].startswith("glasses ")
    assert fw.stop(sig) == 0
    assert "Traceback" not in fw.output()
    log = (fw.data_dir / "logs" / "glasses.log").read_text()
    assert "stopped cleanly" in log
    assert not fw.tty.exists()  # the pty link is removed
    for sub in ("photos", "videos", "recordings", "notes", "logs"):
        assert (fw.data_dir / sub).is_dir()


def test_no_driver_or_service_knows_about_the_sim():
    """Only bring-up may import the sim; the rest asks the board for capabilities."""
    offenders = []
    for path in list((ROOT / "drivers").glob("*.py")) + list((ROOT / "firmware").rglob("*.py")):
        if path.name == "bringup.py":
            continue
        text = path.read_text()
        if re.search(r"^\s*(from|import)\s+(drivers)?\.?sim\b", text, re.M) or \
                re.search(r"(board|name|kind)\s*==\s*['\"]sim['\"]", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


SERVICE_PACKAGES = ("capture", "meeting", "power", "voice")


def test_services_take_ports_not_the_firmware():
    """Only app.py wires; a service neither imports it nor takes the whole firmware."""
    offenders = []
    for package in SERVICE_PACKAGES:
        for path in (ROOT / "firmware" / package).glob("*.py"):
            text = path.read_text()
            if re.search(r"^\s*from\s+(firmware|\.+)\s*(\.\s*)?app\b|^\s*import\s+firmware\.app\b|"
                         r"from \.\.? import .*\bapp\b", text, re.M) or \
                    re.search(r"def __init__\(self, fw\b", text):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
    ports = (ROOT / "firmware" / "ports.py").read_text()
    for port in ("Clock", "EventSink", "Blocking", "ModeGate", "Claims", "Camera", "Speaks",
                 "VoiceModels", "LanguageModels"):
        assert f"class {port}(Protocol)" in ports


def test_stdio_console_reads_commands_from_a_file_or_nothing(tmp_path):
    """stdin from /dev/null or a file: every command answered, then a clean stop."""
    lines = [f"echo {'on' if i % 2 else 'off'}" for i in range(30)] + ["version", "capture photo"]
    commands = tmp_path / "commands.txt"
    commands.write_text("\n".join(lines) + "\n")      # more lines than the console queues
    with open(commands) as stdin:
        r = subprocess.run(GLASSES + ["run", "--board", "sim", "--console", "stdio", "--models", "none",
                                      "--data-dir", str(tmp_path / "d")],
                           cwd=ROOT, stdin=stdin, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr + r.stdout
    assert r.stdout.count("\nOK\n") == len(lines)
    assert "photo photos/" in r.stdout and len(list((tmp_path / "d" / "photos").glob("*.jpg"))) == 1
    assert "console input ended" in r.stderr
    with open(os.devnull) as stdin:
        r = subprocess.run(GLASSES + ["run", "--board", "sim", "--console", "stdio", "--models", "none",
                                      "--data-dir", str(tmp_path / "d")],
                           cwd=ROOT, stdin=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr and "console input ended" in r.stderr


@pytest.mark.parametrize("length", [84, 99, 140])
def test_a_data_dir_of_any_length_starts_the_sim_bus(tmp_path, length):
    # dbus-daemon refuses a socket name over 99 bytes: from about 84 bytes of directory it
    # must fall back to /tmp, past the kernel's 108 too (where the fallback was first needed).
    pad = length - len(str(tmp_path)) - len("//sim/bluetooth")
    if pad < 1:
        pytest.skip(f"tmp_path is already {len(str(tmp_path))} bytes long")
    data = tmp_path / ("d" * pad)
    assert len(str(data / "sim" / "bluetooth")) == length
    r = glasses("selftest", "--board", "sim", "--data-dir", str(data), "--json")
    assert r.returncode == 0, r.stderr

"""The serial console, driven through the sim's pty with pyserial as a user would."""

import json
import subprocess
import time

import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GLASSES, ROOT

STATUS_KEYS = {"mode", "battery", "worn", "temperature_c", "storage", "worker", "uptime_s", "board"}


def test_help_lists_commands(shared_firmware):
    reply = shared_firmware.cmd("help")
    assert reply.ok
    names = {line.split()[0] for line in reply.lines}
    assert {"help", "version", "status", "selftest", "sensors", "mode", "log", "models",
            "events", "sim"} <= names
    assert shared_firmware.cmd("help status").lines[0] == "usage: status [--json]"
    sim_help = shared_firmware.cmd("help sim").lines
    assert sim_help[0] == "usage: sim SUBCOMMAND ..."
    for sub in ("button", "say", "mic", "scene", "wear", "battery", "charger", "temp", "fault",
                "advance", "speaker", "phone"):
        assert any(line.startswith(f"sim {sub} ") or line == f"sim {sub}" for line in sim_help), sub


def test_status_json_has_the_contract_fields(shared_firmware):
    reply = shared_firmware.cmd("status --json")
    assert reply.ok and len([x for x in reply.lines if x.startswith("{")]) == 1
    s = reply.json()
    assert STATUS_KEYS <= set(s)
    assert set(s["battery"]) >= {"percent", "voltage", "charging"}
    assert s["board"] == "sim" and s["worker"]["state"]
    assert s["storage"]["free_mb"] > 0 and s["uptime_s"] >= 0


def test_selftest_follows_injected_faults(shared_firmware):
    fw = shared_firmware
    assert fw.cmd("selftest").lines[-1] == "selftest: passed"
    assert fw.cmd("sim fault imu nack").ok
    reply = fw.cmd("selftest --json")
    assert reply.ok
    rows = {d["device"]: d for d in reply.json()["devices"]}
    assert not rows["imu"]["ok"] and "NACK" in rows["imu"]["detail"]
    assert fw.cmd("status --json").json()["faults"]["imu"]
    assert fw.cmd("sim fault imu clear").ok
    rows = {d["device"]: d for d in fw.cmd("selftest --json").json()["devices"]}
    assert rows["imu"]["ok"]
    assert "imu" not in fw.cmd("status --json").json()["faults"]


def test_wear_and_battery_show_in_status(shared_firmware):
    fw = shared_firmware
    assert fw.cmd("sim wear off").ok and fw.cmd("sim battery 12").ok
    s = fw.cmd("status --json").json()
    assert s["worn"] is False and s["battery"]["percent"] == 12.0 and s["mode"] == "SLEEP"
    assert fw.cmd("sim wear on").ok
    s = fw.cmd("status --json").json()
    assert s["worn"] is True and s["mode"] == "LOW_BATTERY"
    assert fw.cmd("sim charger on").ok
    s = fw.cmd("status --json").json()
    assert s["battery"]["charging"] is True and s["mode"] == "CHARGING"
    assert fw.cmd("sim charger off").ok and fw.cmd("sim battery 80").ok
    assert fw.cmd("status --json").json()["mode"] == "STANDBY"


def test_events_never_split_a_reply(shared_firmware):
    fw = shared_firmware
    assert fw.cmd("events on").ok
    try:
        reply = fw.cmd("sim temp 75")          # makes the mode change while replying
        assert reply.ok and reply.lines == ["temperature 75 C"]
        later = fw.cmd("version")
        events = reply.events + later.events
        assert any(e.startswith("mode HOT") for e in events)
        fw.cmd("sim temp 32")
    finally:
        assert fw.cmd("events off").ok


def test_sim_errors_say_what_to_try(shared_firmware):
    fw = shared_firmware
    for line, expect in [("bogus", "unknown command 'bogus'; type help"),
                         ("sim battery lots", "PERCENT must be a number"),
                         ("sim fault imu melt", "unknown fault 'melt'"),
                         ("sim fault toaster nack", "unknown device 'toaster'"),
                         ("sim button nose click", "no button 'nose'"),
                         ("status --yaml", "usage: status [--json]"),
                         ("sim mic /nonexistent.wav", "no such file"),
                         ('status "unbalanced', "check the quotes"),
                         ('sim mic "/tmp/x', "check the quotes")]:
        reply = fw.cmd(line)
        assert not reply.ok and expect in reply.error, (line, reply.error)


def test_say_speaks_into_the_microphones_and_buttons_click(shared_firmware):
    fw = shared_firmware
    reply = fw.cmd("sim say hello glasses")
    assert reply.ok and "saying (en" in reply.lines[0]
    assert fw.cmd("sim say --lang zh 你好").ok
    assert fw.cmd("events on").ok
    assert fw.cmd("sim button capture click").ok
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline and "button capture click" not in seen:
        seen += fw.cmd("version").events
        time.sleep(0.1)
    assert "button capture click" in seen
    fw.cmd("events off")


def raw(fw, data: bytes, timeout_s=10) -> list[str]:
    fw.client.serial.write(data)
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = fw.client._readline(deadline)
        if line is None:
            break
        line = line.removeprefix("glasses> ")
        if line:
            lines.append(line)
        if line == "OK" or line.startswith("ERR "):
            break
    return lines


def test_bad_lines_get_err_and_the_console_lives_on(shared_firmware):
    fw = shared_firmware
    assert raw(fw, b"x" * 2000 + b"\n")[-1].startswith("ERR line longer than 1024 bytes")
    assert raw(fw, b"stat\x01us\n")[-1].startswith("ERR control byte 0x01")
    assert raw(fw, b"status \xff\xfe\n")[-1].startswith("ERR invalid UTF-8")
    assert raw(fw, b"status\r\n")[-1] == "OK"      # \r\n is accepted
    assert fw.cmd("status --json").json()["board"] == "sim"


def test_flood_is_dropped_and_counted_not_fatal(shared_firmware):
    fw = shared_firmware
    fw.client.serial.write(b"version\n" * 300)
    time.sleep(2)
    fw.client.serial.reset_input_buffer()
    fw.client._buf = b""
    # Whatever was queued is answered; then the console is in step again.
    for _ in range(3):
        fw.client.command("", timeout_s=30)
    assert fw.cmd("status --json").json()["board"] == "sim"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=1500).filter(lambda b: b"\n" not in b))
def test_fuzz_live_console(shared_firmware, junk):
    lines = raw(shared_firmware, junk + b"\n")
    assert lines, "no reply"
    last = lines[-1]
    assert last == "OK" or last.startswith("ERR "), lines
    if last == "OK":  # only something a user could really have typed is accepted
        assert junk.decode("utf-8", "replace").strip() == "" or junk.decode().split()[0] in (
            "help", "version", "status", "mode", "log", "models", "sensors")


def test_fuzz_then_status_still_works(shared_firmware):
    assert shared_firmware.cmd("status --json").json()["mode"]


def test_diag_writes_a_report_and_sets_the_exit_code(shared_firmware, tmp_path):
    fw = shared_firmware
    out = tmp_path / "report.json"
    fw.client.close()  # one client at a time on a serial port
    try:
        r = subprocess.run(GLASSES + ["diag", "--port", str(fw.tty), "--json", "--out", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        report = json.loads(out.read_text())
        assert report["ok"] and report["status"]["board"] == "sim"
        assert {d["device"] for d in report["selftest"]["devices"]} >= {"imu", "camera"}
        with serial.Serial(str(fw.tty), 115200, timeout=5) as s:
            s.write(b"sim fault fuel_gauge gone\n")
            time.sleep(0.5)
        r = subprocess.run(GLASSES + ["diag", "--port", str(fw.tty), "--out", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1
        assert "FAIL (fuel_gauge)" in out.read_text()
    finally:
        from glasses_firmware.firmware.console.host import ConsoleClient
        fw.client = ConsoleClient(str(fw.tty))
        fw.cmd("sim fault fuel_gauge clear")


def test_host_console_reads_commands_from_stdin(shared_firmware):
    fw = shared_firmware
    fw.client.close()
    try:
        r = subprocess.run(GLASSES + ["console", "--port", str(fw.tty)], cwd=ROOT, input="version\nbogus\nexit\n",
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0
        assert "glasses 0." in r.stdout and "OK" in r.stdout and "ERR unknown command" in r.stdout
    finally:
        from glasses_firmware.firmware.console.host import ConsoleClient
        fw.client = ConsoleClient(str(fw.tty))


def test_board_with_a_pin_locks_the_console(tmp_path):
    from glasses_firmware.firmware.console.pin import hash_pin
    from tests.conftest import RunningFirmware
    pin_hash = hash_pin("2468")
    board = tmp_path / "pinned.toml"
    text = (ROOT / "boards" / "sim.toml").read_text()
    board.write_text(text.replace('tty = "pty"\n', f'tty = "pty"\npin_hash = "{pin_hash}"\n'))
    fw = RunningFirmware(tmp_path, board=str(board))
    try:
        assert fw.cmd("version").ok and fw.cmd("help").ok
        for line in ("status", "sim battery 5", "selftest"):
            reply = fw.cmd(line)
            assert not reply.ok and "locked; type login PIN" in reply.error
        assert "wrong PIN" in fw.cmd("login 1111").error
        assert fw.cmd("login 2468").lines == ["unlocked"]
        assert fw.cmd("status").ok
        everything = "\n".join(fw.cmd("log 500").lines + fw.cmd("help").lines)
        assert pin_hash.split("$")[2] not in everything and "2468" not in everything
    finally:
        assert fw.stop() == 0

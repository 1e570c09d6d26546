"""Board files: every shipped board loads; malformed ones are refused naming file and key."""

import re

import pytest

from glasses_firmware import boards
from glasses_firmware.drivers.errors import ConfigError

SIM = (boards.BOARDS_DIR / "sim.toml").read_text()


@pytest.mark.parametrize("name", ["cm5-ref", "cm4-ref", "sim"])
def test_shipped_boards_load(name):
    b = boards.load(name)
    assert b.name == name
    assert b.console.baud == 115200
    assert b.imu.address == 0x6A and b.fuel_gauge.address == 0x36
    assert set(b.buttons) >= {"capture", "action", "power"}
    assert all(entry.source for entry in b.power.values())
    assert b.battery.capacity_mah == 5000


def test_reference_boards_carry_image_and_service():
    for name in ("cm5-ref", "cm4-ref"):
        b = boards.load(name)
        assert b.image.python_abi == "cp311" and "aarch64" in b.image.platform
        assert {"gpio", "i2c", "video", "audio", "dialout"} <= set(b.service.groups)
        assert b.eeprom["POWER_OFF_ON_HALT"] == 1


def write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("edit, key", [
    (lambda s: s.replace("[imu]\n", "[imu]\nacel_range_g = 4\n"), "imu.acel_range_g"),
    (lambda s: s + "\n[bogus]\nx = 1\n", "bogus"),
    (lambda s: s.replace("[buttons.power]\npin = 26\nlong_press_s = 2.0\n", ""), "buttons.power"),
    (lambda s: re.sub(r"\[fuel_gauge\][^\[]*", "", s), "fuel_gauge"),
    (lambda s: s.replace("address = 0x6A", 'address = "0x6A"'), "imu.address"),
    (lambda s: s.replace("still_size = [4608, 2592]", "still_size = [4608]"), "camera.still_size"),
    (lambda s: s.replace("rate_hz = 48000", "rate_hz = 48000.5"), "audio.rate_hz"),
    (lambda s: s.replace("worn = true", "worn = 1"), "sim.worn"),
    (lambda s: s.replace("readback_pin = 13\n", ""), "leds.capture.readback_pin"),
    (lambda s: s.replace('source = "same as cm5-ref"', "", 1), "power.soc.source"),
    (lambda s: s.replace('part = "lsm6dsox"', 'part = "bmi160"'), "imu.part"),
    (lambda s: s.replace('part = "max17048"', 'part = "lsm6dsox"'), "fuel_gauge.part"),
])
def test_malformed_board_is_refused_naming_file_and_key(tmp_path, edit, key):
    path = write(tmp_path, edit(SIM))
    with pytest.raises(ConfigError) as info:
        boards.load(str(path))
    message = str(info.value)
    assert str(path) in message
    assert f"'{key}'" in message


def test_not_toml_and_unknown_board(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        boards.load(str(write(tmp_path, "[board\n")))
    with pytest.raises(ConfigError, match="unknown board 'cm9'; choose one of: cm4-ref, cm5-ref, sim"):
        boards.load("cm9")

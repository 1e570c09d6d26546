"""Parts as data: the board file's `part` keys choose driver and emulator from one table."""

import inspect

import pytest

from glasses_firmware import boards
from glasses_firmware.drivers.bringup import Board
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.drivers.max17048 import MAX17048, MAX17049
from glasses_firmware.drivers.parts import PARTS, ROLES, find
from glasses_firmware.drivers.sim.i2c import RegisterEmulator, emulator_class
from glasses_firmware.drivers.sim.max17048 import MAX17048Emulator, MAX17049Emulator, ocv_for

SIM_TOML = (boards.BOARDS_DIR / "sim.toml").read_text()


@pytest.mark.parametrize("name", PARTS)
def test_every_part_names_a_role_a_driver_and_a_sim_emulator(name):
    part = PARTS[name]
    assert part.role in ROLES
    emulator = emulator_class(part)
    assert issubclass(emulator, RegisterEmulator)
    assert emulator.__module__.startswith("glasses_firmware.drivers.sim.")
    # The sim hands an emulator its interrupt pin by the board spec's name for it.
    assert ROLES[part.role].irq_pin in inspect.signature(emulator).parameters
    assert find(part.role, name, "x.toml") is part


def test_a_role_can_have_several_parts_and_variants_are_subclasses():
    gauges = [n for n, p in PARTS.items() if p.role == "fuel_gauge"]
    assert gauges == ["max17048", "max17049"]
    assert issubclass(MAX17049, MAX17048) and issubclass(MAX17049Emulator, MAX17048Emulator)


def write(tmp_path, text):
    path = tmp_path / "board.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit, key, known", [
    (lambda s: s.replace('part = "lsm6dsox"', 'part = "lsm9ds1"'), "imu.part", "lsm6dsox"),
    (lambda s: s.replace('part = "max17048"', 'part = "lsm6dsox"'), "fuel_gauge.part",
     "max17048, max17049"),
])
def test_an_unknown_part_names_file_key_and_known_parts(tmp_path, edit, key, known):
    path = write(tmp_path, edit(SIM_TOML))
    with pytest.raises(ConfigError) as info:
        boards.load(str(path))
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message
    assert message.endswith(f"choose one of: {known}")


def test_the_board_file_chooses_the_variant(tmp_path):
    config = boards.load(str(write(tmp_path, SIM_TOML.replace('part = "max17048"',
                                                               'part = "max17049"'))))
    board = Board(config, tmp_path / "data", SimClock(realtime=True))
    try:
        assert type(board.fuel_gauge) is MAX17049
        assert type(board.sim.fuel_gauge) is MAX17049Emulator
        reading = board.fuel_gauge.read()
        assert reading.percent == pytest.approx(config.sim.battery_percent, abs=1 / 256)
        assert reading.voltage_v == pytest.approx(2 * ocv_for(config.sim.battery_percent), abs=1e-4)
        assert board.probes()["fuel_gauge"][0]().startswith("MAX17049 0x36, 80.0 %, 7.96")
    finally:
        board.close()

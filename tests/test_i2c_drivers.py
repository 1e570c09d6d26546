"""Every part in drivers.parts.PARTS against its register-level emulator: one conformance
test and one fault matrix, with physical values and checks chosen by the part's role."""

import dataclasses
from dataclasses import dataclass
from typing import Callable

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from glasses_firmware import boards
from glasses_firmware.drivers.errors import BusError, DeviceError, GlassesError
from glasses_firmware.drivers.i2c import I2CDevice
from glasses_firmware.drivers.lsm6dsox import G, LSM6DSOX
from glasses_firmware.drivers.max17048 import MAX17048
from glasses_firmware.drivers.parts import PARTS, ROLES
from glasses_firmware.drivers.sim.i2c import FAULTS, SimI2CBus, emulator_class
from glasses_firmware.drivers.sim.lsm6dsox import LSM6DSOXEmulator

SIM = boards.load("sim")  # every part is set up as the sim board sets up its role


@dataclass
class Physics:
    """A role's physical world: values to set on any of its emulators, and how to check a reading."""

    values: st.SearchStrategy
    example: tuple                   # one value, for the fault matrix
    apply: Callable                  # (emulator, value) -> None
    check: Callable                  # (emulator, reading, value) -> None


def _imu_apply(emu, v):
    accel, gyro, temp = v
    emu.set_acceleration(*accel)
    emu.set_rotation(*gyro)
    emu.set_temperature(temp)


def _imu_check(emu, reading, v):
    accel, gyro, temp = v
    # One LSB at 4 g is 1.2 mm/s^2; at 250 dps 8.75 mdps; temperature 1/256 C.
    assert reading.accel_ms2 == pytest.approx(accel, abs=0.002)
    assert reading.gyro_dps == pytest.approx(gyro, abs=0.01)
    assert reading.temperature_c == pytest.approx(temp, abs=0.005)


def _gauge_apply(emu, v):
    percent, rate = v
    emu.set_percent(percent)
    emu.set_rate(rate)


def _gauge_check(emu, reading, v):
    percent, rate = v
    assert reading.percent == pytest.approx(percent, abs=1 / 256)
    # Half an LSB: 39 uV a cell in series.
    assert reading.voltage_v == pytest.approx(emu.ocv_v(), abs=40e-6 * emu.cells)
    assert reading.rate_pct_per_h == pytest.approx(rate, abs=0.105)


accel = st.floats(-3.9 * G, 3.9 * G)
gyro = st.floats(-249.0, 249.0)
PHYSICS = {
    "imu": Physics(st.tuples(st.tuples(accel, accel, accel), st.tuples(gyro, gyro, gyro),
                             st.floats(-40, 85)),
                   ((1.0, -2.0, 9.0), (10.0, 0.0, -5.0), 31.0), _imu_apply, _imu_check),
    "fuel_gauge": Physics(st.tuples(st.floats(0, 100), st.floats(-6000, 6000)), (42.0, -12.5),
                          _gauge_apply, _gauge_check),
}


def make(name, pins=None):
    """A part's driver, set up from the sim board's spec for its role, on its emulator.

    With a MockFactory as `pins`, the interrupt line is wired between the two, as bring-up does.
    """
    part = PARTS[name]
    spec = dataclasses.replace(getattr(SIM, part.role), part=name)
    bus = SimI2CBus()
    line, irq, wiring = ROLES[part.role], None, {}
    if pins is not None:
        pin = getattr(spec, line.irq_pin)
        wiring = {line.irq_pin: pins.pin(pin)}
        irq = DigitalInputDevice(pin, pull_up=line.irq_pull_up, pin_factory=pins)
    emu = bus.attach(spec.address, emulator_class(part)(**wiring))
    drv = part.build(I2CDevice(bus, spec.address, part.role, "sim-i2c-1"), spec, irq)
    return PHYSICS[part.role], bus, emu, drv


def parts_of(role):
    return [name for name, part in PARTS.items() if part.role == role]


def test_every_role_has_physics():
    assert {part.role for part in PARTS.values()} <= set(PHYSICS)


@pytest.mark.parametrize("name", PARTS)
def test_conformance_physical_values_read_back(name):
    physics, bus, emu, drv = make(name)
    assert isinstance(drv, PARTS[name].driver)

    @settings(max_examples=60, deadline=None)
    @given(physics.values)
    def check(value):
        physics.apply(emu, value)
        physics.check(emu, drv.read(), value)

    check()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", PARTS)
def test_fault_matrix(name, fault):
    physics, bus, emu, drv = make(name)
    role, value = PARTS[name].role, physics.example
    physics.apply(emu, value)
    physics.check(emu, drv.read(), value)

    bus.set_fault(drv.dev.address, fault)
    for _ in range(3):
        with pytest.raises(GlassesError) as info:
            drv.read()
        assert isinstance(info.value, (BusError, DeviceError))
        message = str(info.value)
        assert role in message and "\n" not in message
        if fault in ("nack", "gone", "timeout"):
            assert isinstance(info.value, OSError)  # still an OSError for callers that want one

    bus.set_fault(drv.dev.address, "clear")
    # After "gone" the part comes back at power-on defaults: the driver must reconfigure.
    if fault == "gone":
        physics.apply(emu, value)
    physics.check(emu, drv.read(), value)
    physics.check(emu, drv.read(), value)


def test_imu_wrong_chip_id_is_refused():
    physics, bus, emu, drv = make("lsm6dsox")
    emu.regs[0x0F] = 0x6A  # an LSM6DS3, not ours
    with pytest.raises(DeviceError, match="WHO_AM_I is 0x6a, expected 0x6c"):
        drv.read()


def test_fuel_gauge_wrong_version_is_refused():
    physics, bus, emu, drv = make("max17048")
    emu._put16(0x08, 0x0031)
    with pytest.raises(DeviceError, match="VERSION 0x0031"):
        drv.read()


def test_imu_reset_behind_our_back_is_reconfigured_transparently():
    physics, bus, emu, drv = make("lsm6dsox")
    drv.read()
    emu.power_on_reset()
    emu.set_acceleration(0.5, 0.5, 9.0)
    r = drv.read()
    assert r.accel_ms2 == pytest.approx((0.5, 0.5, 9.0), abs=0.002)
    assert drv.resets_seen == 1


@pytest.mark.parametrize("range_g", [2, 4, 8, 16])
def test_imu_accel_ranges_saturate_at_full_scale(range_g):
    bus = SimI2CBus()
    emu = bus.attach(0x6A, LSM6DSOXEmulator())
    drv = LSM6DSOX(I2CDevice(bus, 0x6A, "imu"), accel_range_g=range_g, wake_threshold_g=range_g / 16)
    emu.set_acceleration(0.0, 0.0, 20 * G)
    assert drv.read().accel_ms2[2] == pytest.approx(range_g * G, rel=0.001)


@pytest.mark.parametrize("name", parts_of("imu"))
def test_imu_wake_interrupt_raises_int1_and_reading_clears_it(name):
    physics, bus, emu, drv = make(name, MockFactory())
    int1 = drv.int1
    assert SIM.imu.wake_threshold_g == 0.125
    drv.read()
    emu.set_acceleration(0.0, 0.1 * G, G)     # below threshold: no wake
    assert not int1.is_active
    emu.set_acceleration(0.0, 0.5 * G, G)     # a 0.4 g jolt
    assert int1.is_active
    r = drv.read()
    assert r.woke and not int1.is_active
    assert not drv.read().woke


@pytest.mark.parametrize("name", parts_of("fuel_gauge"))
def test_fuel_gauge_low_alert_pulls_alrt_low(name):
    physics, bus, emu, drv = make(name, MockFactory())
    alert = drv.alert
    assert SIM.fuel_gauge.alert_percent == 10
    emu.set_percent(50)
    assert not drv.read().alert_low
    emu.set_percent(9.5)
    assert alert.is_active  # active low, pulled up
    assert drv.read().alert_low
    drv.clear_alert()
    assert not alert.is_active and not drv.read().alert_low


def test_bad_settings_name_the_allowed_values():
    bus = SimI2CBus()
    with pytest.raises(ValueError, match="choose one of 2, 4, 8, 16"):
        LSM6DSOX(I2CDevice(bus, 0x6A, "imu"), accel_range_g=3)
    with pytest.raises(ValueError, match="alert_percent"):
        MAX17048(I2CDevice(bus, 0x36, "fuel_gauge"), alert_percent=40)

"""Every I2C driver against its register-level emulator: one conformance test, one fault matrix."""

from dataclasses import dataclass
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import BusError, DeviceError, GlassesError
from drivers.i2c import I2CDevice
from drivers.lsm6dsox import G, LSM6DSOX
from drivers.max17048 import MAX17048
from drivers.sim.i2c import FAULTS, SimI2CBus
from drivers.sim.lsm6dsox import LSM6DSOXEmulator
from drivers.sim.max17048 import MAX17048Emulator, ocv_for


@dataclass
class Pair:
    address: int
    emulator: Callable
    driver: Callable
    physical: st.SearchStrategy      # values to set on the emulator
    apply: Callable                  # (emulator, value) -> None
    check: Callable                  # (reading, value) -> None


def _imu_apply(emu, v):
    accel, gyro, temp = v
    emu.set_acceleration(*accel)
    emu.set_rotation(*gyro)
    emu.set_temperature(temp)


def _imu_check(reading, v):
    accel, gyro, temp = v
    # One LSB at 4 g is 1.2 mm/s^2; at 250 dps 8.75 mdps; temperature 1/256 C.
    assert reading.accel_ms2 == pytest.approx(accel, abs=0.002)
    assert reading.gyro_dps == pytest.approx(gyro, abs=0.01)
    assert reading.temperature_c == pytest.approx(temp, abs=0.005)


def _gauge_apply(emu, v):
    percent, rate = v
    emu.set_percent(percent)
    emu.set_rate(rate)


def _gauge_check(reading, v):
    percent, rate = v
    assert reading.percent == pytest.approx(percent, abs=1 / 256)
    assert reading.voltage_v == pytest.approx(ocv_for(percent), abs=1e-4)
    assert reading.rate_pct_per_h == pytest.approx(rate, abs=0.105)


accel = st.floats(-3.9 * G, 3.9 * G)
gyro = st.floats(-249.0, 249.0)
PAIRS = {
    "imu": Pair(0x6A, LSM6DSOXEmulator, lambda dev: LSM6DSOX(dev, accel_range_g=4, gyro_range_dps=250),
                st.tuples(st.tuples(accel, accel, accel), st.tuples(gyro, gyro, gyro),
                          st.floats(-40, 85)),
                _imu_apply, _imu_check),
    "fuel_gauge": Pair(0x36, MAX17048Emulator, lambda dev: MAX17048(dev, alert_percent=10),
                       st.tuples(st.floats(0, 100), st.floats(-6000, 6000)),
                       _gauge_apply, _gauge_check),
}


def make(name):
    pair = PAIRS[name]
    bus = SimI2CBus()
    emu = bus.attach(pair.address, pair.emulator())
    drv = pair.driver(I2CDevice(bus, pair.address, name, "sim-i2c-1"))
    return pair, bus, emu, drv


@pytest.mark.parametrize("name", PAIRS)
def test_conformance_physical_values_read_back(name):
    pair, bus, emu, drv = make(name)

    @settings(max_examples=60, deadline=None)
    @given(pair.physical)
    def check(value):
        pair.apply(emu, value)
        pair.check(drv.read(), value)

    check()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", PAIRS)
def test_fault_matrix(name, fault):
    pair, bus, emu, drv = make(name)
    value = {"imu": ((1.0, -2.0, 9.0), (10.0, 0.0, -5.0), 31.0), "fuel_gauge": (42.0, -12.5)}[name]
    pair.apply(emu, value)
    pair.check(drv.read(), value)

    bus.set_fault(pair.address, fault)
    for _ in range(3):
        with pytest.raises(GlassesError) as info:
            drv.read()
        assert isinstance(info.value, (BusError, DeviceError))
        message = str(info.value)
        assert name in message and "\n" not in message
        if fault in ("nack", "gone", "timeout"):
            assert isinstance(info.value, OSError)  # still an OSError for callers that want one

    bus.set_fault(pair.address, "clear")
    # After "gone" the part comes back at power-on defaults: the driver must reconfigure.
    if fault == "gone":
        pair.apply(emu, value)
    pair.check(drv.read(), value)
    pair.check(drv.read(), value)


def test_imu_wrong_chip_id_is_refused():
    pair, bus, emu, drv = make("imu")
    emu.regs[0x0F] = 0x6A  # an LSM6DS3, not ours
    with pytest.raises(DeviceError, match="WHO_AM_I is 0x6a, expected 0x6c"):
        drv.read()


def test_fuel_gauge_wrong_version_is_refused():
    pair, bus, emu, drv = make("fuel_gauge")
    emu._put16(0x08, 0x0031)
    with pytest.raises(DeviceError, match="VERSION 0x0031"):
        drv.read()


def test_imu_reset_behind_our_back_is_reconfigured_transparently():
    pair, bus, emu, drv = make("imu")
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


def test_imu_wake_interrupt_raises_int1_and_reading_clears_it():
    from gpiozero import DigitalInputDevice
    from gpiozero.pins.mock import MockFactory
    factory = MockFactory()
    pin = factory.pin(17)
    bus = SimI2CBus()
    emu = bus.attach(0x6A, LSM6DSOXEmulator(int1_pin=pin))
    int1 = DigitalInputDevice(17, pull_up=False, pin_factory=factory)
    drv = LSM6DSOX(I2CDevice(bus, 0x6A, "imu"), wake_threshold_g=0.25, int1=int1)
    drv.read()
    emu.set_acceleration(0.0, 0.1 * G, G)     # below threshold: no wake
    assert not int1.is_active
    emu.set_acceleration(0.0, 0.5 * G, G)     # a 0.4 g jolt
    assert int1.is_active
    r = drv.read()
    assert r.woke and not int1.is_active
    assert not drv.read().woke


def test_fuel_gauge_low_alert_pulls_alrt_low():
    from gpiozero import DigitalInputDevice
    from gpiozero.pins.mock import MockFactory
    factory = MockFactory()
    bus = SimI2CBus()
    emu = bus.attach(0x36, MAX17048Emulator(alert_pin=factory.pin(27), percent=50))
    alert = DigitalInputDevice(27, pull_up=True, pin_factory=factory)
    drv = MAX17048(I2CDevice(bus, 0x36, "fuel_gauge"), alert_percent=10, alert=alert)
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

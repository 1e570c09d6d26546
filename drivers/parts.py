"""Parts as data: a board file's `part` key chooses an I2C part's driver and emulator.

Bring-up builds drivers from this table and the sim attaches emulators from it; the
conformance test and the fault matrix iterate it, so a new chip, or a variant (a tiny
subclass), is one entry here. Emulators are named as "module:Class" under drivers.sim
rather than imported, because only bring-up and the sim itself may import the sim.
"""

from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError
from .lsm6dsox import LSM6DSOX
from .max17048 import MAX17048, MAX17049


@dataclass(frozen=True)
class Role:
    """What a board-file table ([imu], [fuel_gauge]) tells the drivers of its parts."""

    irq_pin: str         # the spec's field for the interrupt GPIO; emulators take their pin by this keyword
    irq_pull_up: bool    # open-drain, active-low lines need the pull-up
    options: Callable    # (spec, irq input or None) -> the driver's keyword arguments


def _imu_options(spec, irq) -> dict:
    return dict(accel_range_g=spec.accel_range_g, accel_odr_hz=spec.accel_odr_hz,
                gyro_range_dps=spec.gyro_range_dps, gyro_odr_hz=spec.gyro_odr_hz,
                wake_threshold_g=spec.wake_threshold_g, int1=irq)


def _fuel_gauge_options(spec, irq) -> dict:
    return dict(alert_percent=spec.alert_percent, alert=irq)


# INT1 is push-pull, active high; ALRT is open-drain, active low.
ROLES = {
    "imu": Role("int1_pin", irq_pull_up=False, options=_imu_options),
    "fuel_gauge": Role("alert_pin", irq_pull_up=True, options=_fuel_gauge_options),
}


@dataclass(frozen=True)
class Part:
    """One chip: the board-file table it serves, its driver, and its emulator's name."""

    role: str            # a key of ROLES
    driver: type
    emulator: str        # "module:Class" under drivers.sim

    def build(self, dev, spec, irq=None):
        """The driver on `dev` (an I2CDevice), set up as the board spec says; `irq`: a gpiozero input or None."""
        return self.driver(dev, **ROLES[self.role].options(spec, irq))


PARTS = {
    "lsm6dsox": Part("imu", LSM6DSOX, "lsm6dsox:LSM6DSOXEmulator"),
    "max17048": Part("fuel_gauge", MAX17048, "max17048:MAX17048Emulator"),
    "max17049": Part("fuel_gauge", MAX17049, "max17048:MAX17049Emulator"),
}


def find(role: str, name: str, file: str) -> Part:
    """The part a board file names for `role`; ConfigError naming the file, the key and the known parts."""
    part = PARTS.get(name)
    if part is None or part.role != role:
        known = ", ".join(n for n, p in PARTS.items() if p.role == role)
        raise ConfigError(f"{file}: '{role}.part' is '{name}', not a known {role} part; "
                          f"choose one of: {known}")
    return part

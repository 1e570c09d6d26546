"""Sensor sampling and what follows from it: worn or not, battery, temperature.

Every read goes through the real drivers, so a device fault shows up here as a fault
entry (and an event) and the rest keeps working; it clears when the device answers.
Wear is the IMU's orientation (upright on a head) plus recent activity (its wake-up
interrupt): glasses left upright on a table count as taken off after the idle timeout.
"""

import logging
import shutil
from dataclasses import dataclass, field

from glasses_firmware.drivers.errors import GlassesError

log = logging.getLogger("glasses.monitor")

G = 9.80665
UPRIGHT_G = 0.5          # z-axis share of gravity above which the frame is on a head
CHARGING_PCT_PER_H = 0.5  # a charge rate above this means a charger is connected


@dataclass
class Snapshot:
    """The latest readings; a value is None while its device is faulty."""

    imu: object = None
    gauge: object = None
    soc_temp_c: float | None = None
    faults: dict[str, str] = field(default_factory=dict)


class Monitor:
    """Samples the sensors, tracks wear and faults; the scheduler turns that into modes."""

    def __init__(self, imu, fuel_gauge, thermal, charger_input, clock, events,
                 idle_timeout_s: float = 900.0, wear_unsensed: bool = False):
        self.imu, self.fuel_gauge, self.thermal = imu, fuel_gauge, thermal
        self.charger_input = charger_input   # power-good input, or None on boards without
        self.clock = clock
        self.events = events
        self.idle_timeout_s = idle_timeout_s
        self.snapshot = Snapshot()
        self.last_activity = clock.monotonic()
        # A machine without the IMU (drivers/absent.py) cannot tell whether the glasses are
        # on: they count as worn, so the assistant and console stay usable, not asleep.
        self.wear_unsensed = wear_unsensed
        self.worn = wear_unsensed

    def sample(self) -> Snapshot:
        """Read every sensor now; update wear and faults (call on the loop)."""
        snap = Snapshot()
        for name, read in (("imu", self.imu.read), ("fuel_gauge", self.fuel_gauge.read),
                           ("soc_thermal", self.thermal.read_c)):
            try:
                value = read()
            except GlassesError as e:
                snap.faults[name] = str(e).splitlines()[0]
                continue
            if name == "imu":
                snap.imu = value
            elif name == "fuel_gauge":
                snap.gauge = value
            else:
                snap.soc_temp_c = value
        self._report_faults(self.snapshot.faults, snap.faults)
        self.snapshot = snap
        self._update_wear(snap)
        return snap

    def _report_faults(self, before: dict, after: dict) -> None:
        for name in after.keys() - before.keys():
            self.events.emit("fault", f"{name} {after[name]}")
        for name in before.keys() - after.keys():
            self.events.emit("fault", f"{name} cleared")

    def _update_wear(self, snap: Snapshot) -> None:
        if snap.imu is None or self.wear_unsensed:
            return  # keep the last known state while the IMU is faulty
        now = self.clock.monotonic()
        if snap.imu.woke:
            self.last_activity = now
        upright = snap.imu.accel_ms2[2] > UPRIGHT_G * G
        worn = upright and now - self.last_activity < self.idle_timeout_s
        if worn != self.worn:
            self.worn = worn
            self.events.emit("wear", "on" if worn else "off")

    @property
    def temperature_c(self) -> float | None:
        snap = self.snapshot
        if snap.soc_temp_c is not None:
            return snap.soc_temp_c
        return snap.imu.temperature_c if snap.imu is not None else None

    @property
    def charging(self) -> bool:
        """External power present: the charger's power-good line, else a rising gauge."""
        if self.charger_input is not None:
            return bool(self.charger_input.is_active)
        g = self.snapshot.gauge
        return g is not None and g.rate_pct_per_h > CHARGING_PCT_PER_H

    def storage_free_mb(self, path) -> float:
        return round(shutil.disk_usage(path).free / 2**20, 1)

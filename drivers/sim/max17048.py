"""Register-level emulators of the MAX17048/MAX17049 fuel gauges, driven by physical values.

The sim (and later the power model) sets the state of charge and the charge rate;
the pack voltage follows a Li-ion open-circuit-voltage curve (per cell, times the
cells in series) unless set directly.
Crossing below the alert threshold sets STATUS.HD and CONFIG.ALRT and pulls ALRT low.
"""

import threading

from .. import max17048 as r
from .i2c import RegisterEmulator

# Open-circuit voltage of a typical Li-ion cell against state of charge.
OCV_CURVE = ((0, 3.30), (5, 3.55), (10, 3.65), (20, 3.72), (40, 3.78), (60, 3.87),
             (80, 3.98), (100, 4.18))
VERSION_VALUE = 0x0012
ID_VALUE = 0x96


def ocv_for(percent: float) -> float:
    for (p0, v0), (p1, v1) in zip(OCV_CURVE, OCV_CURVE[1:]):
        if percent <= p1:
            return v0 + (v1 - v0) * (max(percent, p0) - p0) / (p1 - p0)
    return OCV_CURVE[-1][1]


class MAX17048Emulator(RegisterEmulator):
    """The gauge as the bus sees it. `alert_pin` is a gpiozero MockPin (or None)."""

    cells = r.MAX17048.cells

    def __init__(self, alert_pin=None, percent: float = 80.0):
        self.alert_pin = alert_pin
        self.percent = percent
        self.rate_pct_per_h = 0.0
        self.voltage_v = None  # None: follow the OCV curve
        self._lock = threading.RLock()
        super().__init__()

    def power_on_reset(self) -> None:
        super().power_on_reset()
        self._put16(r.VERSION, VERSION_VALUE)
        self._put16(r.CONFIG, r.POR_CONFIG)
        self._put16(r.STATUS, r.POR_STATUS)
        self._put16(r.VRESET_ID, 0x9600 | ID_VALUE)
        self._put16(r.VALRT, 0x00FF)
        self._put16(r.HIBRT, 0x8030)
        self._set_alert(False)

    def _get16(self, reg: int) -> int:
        return self.regs[reg] << 8 | self.regs[reg + 1]

    def _put16(self, reg: int, value: int) -> None:
        self.regs[reg] = value >> 8 & 0xFF
        self.regs[reg + 1] = value & 0xFF

    # Physical side.
    def set_percent(self, percent: float) -> None:
        with self._lock:
            before = self.percent
            self.percent = max(0.0, min(100.0, float(percent)))
            threshold = 32 - r.ATHD.get(self._get16(r.CONFIG))
            if before >= threshold > self.percent:
                self._put16(r.STATUS, r.HD.put(self._get16(r.STATUS), 1))
                self._put16(r.CONFIG, r.ALRT.put(self._get16(r.CONFIG), 1))
                self._set_alert(True)

    def set_rate(self, pct_per_h: float) -> None:
        self.rate_pct_per_h = float(pct_per_h)

    def set_voltage(self, volts: float | None) -> None:
        """The pack voltage; None follows the OCV curve."""
        self.voltage_v = volts

    def ocv_v(self) -> float:
        """The pack's open-circuit voltage at the current charge."""
        return ocv_for(self.percent) * self.cells

    def _set_alert(self, active: bool) -> None:
        # ALRT is open-drain, active low.
        if self.alert_pin is not None:
            self.alert_pin.drive_low() if active else self.alert_pin.drive_high()

    # Register side.
    def before_read(self, reg: int, length: int) -> None:
        with self._lock:
            volts = self.ocv_v() if self.voltage_v is None else self.voltage_v
            lsb_v = r.VCELL_V_PER_LSB_PER_CELL * self.cells
            self._put16(r.VCELL, min(0xFFFF, round(volts / lsb_v)))
            self._put16(r.SOC, min(0xFFFF, round(self.percent / r.SOC_PCT_PER_LSB)))
            crate = max(-32768, min(32767, round(self.rate_pct_per_h / r.CRATE_PCT_H_PER_LSB)))
            self._put16(r.CRATE, crate & 0xFFFF)

    def after_write(self, reg: int, data: bytes) -> None:
        if reg == r.CMD and data[:2] == b"\x54\x00":
            self.power_on_reset()
        if reg <= r.CONFIG < reg + len(data) and not r.ALRT.get(self._get16(r.CONFIG)):
            self._set_alert(False)


class MAX17049Emulator(MAX17048Emulator):
    """The two-cell MAX17049: VCELL reads the pack at 156.25 uV per LSB."""

    cells = r.MAX17049.cells

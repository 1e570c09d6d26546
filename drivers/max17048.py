"""Analog Devices (Maxim) MAX17048/MAX17049 fuel gauges: register map and drivers.

Datasheet 19-6171 rev 4 (one sheet for both; the MAX17049 gauges a two-cell pack). Registers are 16 bits, most significant byte first. One
26-byte burst from VCELL to STATUS returns everything, including VERSION (proves the
part and catches garbage) and STATUS.RI (the part was reset and needs configuring).
"""

from dataclasses import dataclass

from .errors import BusError, DeviceError
from .regmap import Bits

ADDRESS = 0x36

VCELL = 0x02
SOC = 0x04
MODE = 0x06
VERSION = 0x08
HIBRT = 0x0A
CONFIG = 0x0C
VALRT = 0x14
CRATE = 0x16
VRESET_ID = 0x18
STATUS = 0x1A
CMD = 0xFE

ATHD = Bits(CONFIG, 0, 5)   # empty alert at (32 - ATHD) %
ALRT = Bits(CONFIG, 5)
ALSC = Bits(CONFIG, 6)
SLEEP = Bits(CONFIG, 7)
RCOMP = Bits(CONFIG, 8, 8)
RI = Bits(STATUS, 8)         # reset indicator
VH = Bits(STATUS, 9)
VL = Bits(STATUS, 10)
VR = Bits(STATUS, 11)
HD = Bits(STATUS, 12)        # SOC low (below the ATHD threshold)
SC = Bits(STATUS, 13)

VERSION_MASK = 0xFFF0
VERSION_FAMILY = 0x0010
VCELL_V_PER_LSB_PER_CELL = 78.125e-6
SOC_PCT_PER_LSB = 1 / 256
CRATE_PCT_H_PER_LSB = 0.208
POR_CONFIG = 0x971C
POR_STATUS = 0x0100          # RI set after power-on

BURST_START = VCELL
BURST_LEN = STATUS + 2 - VCELL


def athd_for(alert_percent: int) -> int:
    if not 1 <= alert_percent <= 32:
        raise ValueError(f"alert_percent {alert_percent} outside 1..32")
    return 32 - alert_percent


@dataclass(frozen=True)
class GaugeReading:
    """Battery state: percent 0-100, cell voltage, charge rate (+ charging, - draining)."""

    percent: float
    voltage_v: float
    rate_pct_per_h: float
    alert_low: bool


class MAX17048:
    """Fuel-gauge driver; re-configures itself after the gauge was reset or went away."""

    name = "fuel_gauge"
    model = "MAX17048"
    cells = 1  # VCELL counts the whole pack: cells * 78.125 uV per LSB

    def __init__(self, dev, alert_percent: int = 10, alert=None):
        self.dev = dev
        self.alert_percent = alert_percent
        self._athd = athd_for(alert_percent)
        self.alert = alert  # gpiozero input wired to ALRT, or None
        self._ready = False
        self.resets_seen = 0

    def _read16(self, reg: int) -> int:
        hi, lo = self.dev.read(reg, 2)
        return hi << 8 | lo

    def _write16(self, reg: int, value: int) -> None:
        self.dev.write(reg, bytes([value >> 8 & 0xFF, value & 0xFF]))

    def init(self) -> None:
        """Check VERSION, set the low-SOC alert, clear the reset indicator."""
        version = self._read16(VERSION)
        if version & VERSION_MASK != VERSION_FAMILY:
            raise DeviceError(f"fuel_gauge at 0x{self.dev.address:02x}: VERSION 0x{version:04x} "
                              "is not a MAX17048/9 (0x001x); check the part and address")
        config = self._read16(CONFIG)
        config = ALRT.put(ATHD.put(config, self._athd), 0)
        self._write16(CONFIG, config)
        status = self._read16(STATUS)
        self._write16(STATUS, RI.put(HD.put(status, 0), 0))
        self._ready = True

    def read(self) -> GaugeReading:
        for attempt in range(2):
            if not self._ready:
                self.init()
            try:
                regs = self._burst()
                if regs[VERSION] & VERSION_MASK != VERSION_FAMILY:
                    raise DeviceError(f"fuel_gauge: inconsistent data (VERSION 0x{regs[VERSION]:04x}); "
                                      "the bus may be noisy, check wiring")
                if RI.get(regs[STATUS]) or ATHD.get(regs[CONFIG]) != self._athd:
                    self.resets_seen += 1
                    self._ready = False
                    if attempt == 0:
                        continue
                    raise DeviceError("fuel_gauge: keeps resetting; check the battery connection")
                return self._decode(regs)
            except (BusError, DeviceError):
                self._ready = False
                raise
        raise AssertionError("unreachable")

    def _burst(self) -> dict[int, int]:
        raw = self.dev.read(BURST_START, BURST_LEN)
        return {BURST_START + i: raw[i] << 8 | raw[i + 1] for i in range(0, BURST_LEN, 2)}

    def _decode(self, regs: dict[int, int]) -> GaugeReading:
        soc_raw = regs[SOC]
        crate = regs[CRATE] - 0x10000 if regs[CRATE] & 0x8000 else regs[CRATE]
        percent = soc_raw * SOC_PCT_PER_LSB
        if percent > 110:
            raise DeviceError(f"fuel_gauge: inconsistent data (SOC {percent:.0f} %); check wiring")
        return GaugeReading(
            percent=min(percent, 100.0),
            voltage_v=regs[VCELL] * VCELL_V_PER_LSB_PER_CELL * self.cells,
            rate_pct_per_h=crate * CRATE_PCT_H_PER_LSB,
            alert_low=bool(HD.get(regs[STATUS])),
        )

    def clear_alert(self) -> None:
        self._write16(CONFIG, ALRT.put(self._read16(CONFIG), 0))
        self._write16(STATUS, HD.put(self._read16(STATUS), 0))

    def probe(self) -> str:
        r = self.read()
        return f"{self.model} 0x{self.dev.address:02x}, {r.percent:.1f} %, {r.voltage_v:.3f} V"


class MAX17049(MAX17048):
    """The two-cell MAX17049: the same registers; VCELL reads the pack, 156.25 uV per LSB."""

    model = "MAX17049"
    cells = 2

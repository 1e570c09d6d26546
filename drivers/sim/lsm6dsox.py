"""Register-level emulator of the ST LSM6DSOX, driven by physical values.

Tests and the sim set acceleration in m/s^2 and rotation in deg/s; the emulator turns
them into register bytes at whatever range the driver configured, and raises the
wake-up interrupt on INT1 when the slope between samples passes the threshold.
"""

import threading

from .. import lsm6dsox as r
from .i2c import RegisterEmulator


def _clamp16(v: float) -> int:
    return max(-32768, min(32767, round(v)))


class LSM6DSOXEmulator(RegisterEmulator):
    """The IMU as the bus sees it. `int1_pin` is a gpiozero MockPin (or None)."""

    size = 0x80

    def __init__(self, int1_pin=None):
        self.int1_pin = int1_pin
        self.accel_ms2 = (0.0, 0.0, r.G)
        self.gyro_dps = (0.0, 0.0, 0.0)
        self.temperature_c = 30.0
        self._lock = threading.RLock()
        super().__init__()

    def power_on_reset(self) -> None:
        super().power_on_reset()
        self.regs[r.WHO_AM_I] = r.CHIP_ID
        self.regs[r.CTRL3_C] = r.IF_INC.put(0, 1)
        self._set_int1(False)

    # Physical side.
    def set_acceleration(self, x: float = 0.0, y: float = 0.0, z: float = r.G) -> None:
        with self._lock:
            old = self.accel_ms2
            self.accel_ms2 = (float(x), float(y), float(z))
            self._check_wake(old, self.accel_ms2)

    def set_rotation(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        self.gyro_dps = (float(x), float(y), float(z))

    def set_temperature(self, celsius: float) -> None:
        self.temperature_c = float(celsius)

    # Register side.
    def _field(self, bits) -> int:
        return bits.get(self.regs[bits.reg])

    def _check_wake(self, old, new) -> None:
        if not self._field(r.INTERRUPTS_ENABLE) or not self._field(r.ODR_XL):
            return
        fs_g = r.accel_range_from_code(self._field(r.FS_XL))
        lsb_g = fs_g / (256 if self._field(r.WAKE_THS_W) else 64)
        threshold_g = self._field(r.WK_THS) * lsb_g
        slopes = [abs(n - o) / r.G for n, o in zip(new, old)]
        axes = [s > threshold_g for s in slopes]
        if not any(axes):
            return
        src = r.WU_IA.put(0, 1) | (axes[0] << 2) | (axes[1] << 1) | axes[2]
        self.regs[r.WAKE_UP_SRC] = src
        self.regs[r.ALL_INT_SRC] |= 0x02  # WU_IA mirror
        if self._field(r.INT1_WU):
            self._set_int1(True)
            if not self._field(r.LIR):
                self._set_int1(False)  # unlatched: a pulse

    def _set_int1(self, level: bool) -> None:
        if self.int1_pin is not None:
            self.int1_pin.drive_high() if level else self.int1_pin.drive_low()

    def before_read(self, reg: int, length: int) -> None:
        with self._lock:
            xl_on = bool(self._field(r.ODR_XL))
            g_on = bool(self._field(r.ODR_G))
            if xl_on:
                fs = r.accel_range_from_code(self._field(r.FS_XL))
                lsb = r.ACCEL_MG_PER_LSB[fs] / 1000 * r.G
                self._put_vec(r.OUTX_L_A, [a / lsb for a in self.accel_ms2])
            if g_on:
                fs = r.gyro_range_from_code(self._field(r.FS_G), self._field(r.FS_125))
                lsb = r.GYRO_MDPS_PER_LSB[fs] / 1000
                self._put_vec(r.OUTX_L_G, [w / lsb for w in self.gyro_dps])
            if xl_on or g_on:
                t = _clamp16((self.temperature_c - r.TEMP_OFFSET_C) * r.TEMP_LSB_PER_C) & 0xFFFF
                self.regs[r.OUT_TEMP_L:r.OUT_TEMP_L + 2] = t.to_bytes(2, "little")
            self.regs[r.STATUS_REG] = (xl_on * 1) | (g_on * 2) | ((xl_on or g_on) * 4)

    def _put_vec(self, reg: int, values) -> None:
        for i, v in enumerate(values):
            self.regs[reg + 2 * i:reg + 2 * i + 2] = (_clamp16(v) & 0xFFFF).to_bytes(2, "little")

    def after_read(self, reg: int, length: int) -> None:
        if reg <= r.WAKE_UP_SRC < reg + length or reg <= r.ALL_INT_SRC < reg + length:
            self.regs[r.WAKE_UP_SRC] = 0
            self.regs[r.ALL_INT_SRC] = 0
            self._set_int1(False)

    def after_write(self, reg: int, data: bytes) -> None:
        if reg <= r.CTRL3_C < reg + len(data) and self._field(r.SW_RESET):
            self.power_on_reset()

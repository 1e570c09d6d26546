"""ST LSM6DSOX accelerometer + gyroscope: register map and driver.

Datasheet DS12814 (rev 3). One 31-byte burst from WHO_AM_I to OUTZ_H_A returns the chip
ID, the control registers, the wake-up source and all samples at once, so every reading
also proves the part is ours, still configured (not reset) and not returning garbage.
"""

from dataclasses import dataclass

from .errors import BusError, DeviceError
from .regmap import Bits, code_for, s16

ADDRESS = 0x6A
CHIP_ID = 0x6C
G = 9.80665

# Register addresses.
WHO_AM_I = 0x0F
CTRL1_XL = 0x10
CTRL2_G = 0x11
CTRL3_C = 0x12
ALL_INT_SRC = 0x1A
WAKE_UP_SRC = 0x1B
STATUS_REG = 0x1E
OUT_TEMP_L = 0x20
OUTX_L_G = 0x22
OUTX_L_A = 0x28
TAP_CFG0 = 0x56
TAP_CFG2 = 0x58
WAKE_UP_THS = 0x5B
WAKE_UP_DUR = 0x5C
MD1_CFG = 0x5E

# Fields.
ODR_XL = Bits(CTRL1_XL, 4, 4)
FS_XL = Bits(CTRL1_XL, 2, 2)
ODR_G = Bits(CTRL2_G, 4, 4)
FS_G = Bits(CTRL2_G, 2, 2)
FS_125 = Bits(CTRL2_G, 1)
BDU = Bits(CTRL3_C, 6)
IF_INC = Bits(CTRL3_C, 2)
SW_RESET = Bits(CTRL3_C, 0)
LIR = Bits(TAP_CFG0, 0)
INTERRUPTS_ENABLE = Bits(TAP_CFG2, 7)
WK_THS = Bits(WAKE_UP_THS, 0, 6)
WAKE_THS_W = Bits(WAKE_UP_DUR, 4)
WAKE_DUR = Bits(WAKE_UP_DUR, 5, 2)
INT1_WU = Bits(MD1_CFG, 5)
WU_IA = Bits(WAKE_UP_SRC, 3)
XLDA = Bits(STATUS_REG, 0)
GDA = Bits(STATUS_REG, 1)
TDA = Bits(STATUS_REG, 2)

# Physical settings and their codes (datasheet tables 52, 55).
ODR_CODES = {0: 0, 12.5: 1, 26: 2, 52: 3, 104: 4, 208: 5, 416: 6, 833: 7, 1660: 8, 3330: 9, 6660: 10}
ACCEL_RANGE_CODES = {2: 0, 16: 1, 4: 2, 8: 3}
GYRO_RANGE_CODES = {250: 0, 500: 1, 1000: 2, 2000: 3}
# Sensitivity per LSB (datasheet table 2).
ACCEL_MG_PER_LSB = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}
GYRO_MDPS_PER_LSB = {125: 4.375, 250: 8.75, 500: 17.5, 1000: 35.0, 2000: 70.0}
TEMP_LSB_PER_C = 256.0
TEMP_OFFSET_C = 25.0

BURST_START = WHO_AM_I
BURST_LEN = OUTX_L_A + 6 - WHO_AM_I  # 31 bytes, inside one SMBus block


def accel_range_from_code(code: int) -> int:
    return {v: k for k, v in ACCEL_RANGE_CODES.items()}[code]


def gyro_range_from_code(code: int, fs_125: int) -> int:
    return 125 if fs_125 else {v: k for k, v in GYRO_RANGE_CODES.items()}[code]


def odr_from_code(code: int) -> float:
    return {v: k for k, v in ODR_CODES.items()}.get(code, 0)


@dataclass(frozen=True)
class ImuReading:
    """One sample set: acceleration in m/s^2, rotation in deg/s, die temperature."""

    accel_ms2: tuple[float, float, float]
    gyro_dps: tuple[float, float, float]
    temperature_c: float
    woke: bool  # the wake-up (activity) interrupt fired since the last reading


class LSM6DSOX:
    """IMU driver. Re-initialises by itself after the part was reset or went away.

    Raises BusError when the bus fails and DeviceError when the part is not an
    LSM6DSOX or returns inconsistent data (garbage).
    """

    name = "imu"

    def __init__(self, dev, accel_range_g=4, accel_odr_hz=26, gyro_range_dps=250,
                 gyro_odr_hz=26, wake_threshold_g=0.125, wake_duration_samples=0, int1=None):
        self.dev = dev
        self.accel_range_g = accel_range_g
        self.accel_odr_hz = accel_odr_hz
        self.gyro_range_dps = gyro_range_dps
        self.gyro_odr_hz = gyro_odr_hz
        self.wake_threshold_g = wake_threshold_g
        self.wake_duration_samples = wake_duration_samples
        self.int1 = int1  # gpiozero input wired to INT1, or None
        self._expected = self._control_values()
        self._ready = False
        self.resets_seen = 0

    def _control_values(self) -> dict[int, int]:
        """What the control registers must hold once configured."""
        ctrl1 = ODR_XL.put(0, code_for(ODR_CODES, self.accel_odr_hz, "accel_odr_hz"))
        ctrl1 = FS_XL.put(ctrl1, code_for(ACCEL_RANGE_CODES, self.accel_range_g, "accel_range_g"))
        ctrl2 = ODR_G.put(0, code_for(ODR_CODES, self.gyro_odr_hz, "gyro_odr_hz"))
        ctrl2 = FS_G.put(ctrl2, code_for(GYRO_RANGE_CODES, self.gyro_range_dps, "gyro_range_dps"))
        ctrl3 = IF_INC.put(BDU.put(0, 1), 1)
        if not 0 <= self.wake_duration_samples <= 3:
            raise ValueError("wake_duration_samples must be 0..3")
        # Wake threshold LSB is FS_XL / 2^6 (WAKE_THS_W = 0).
        lsb_g = self.accel_range_g / 64
        ths = round(self.wake_threshold_g / lsb_g)
        if not 1 <= ths <= 63:
            raise ValueError(
                f"wake_threshold_g {self.wake_threshold_g} outside "
                f"{lsb_g:.3f}..{63 * lsb_g:.2f} g at accel_range_g {self.accel_range_g}")
        return {
            CTRL1_XL: ctrl1, CTRL2_G: ctrl2, CTRL3_C: ctrl3,
            TAP_CFG0: LIR.put(0, 1),
            TAP_CFG2: INTERRUPTS_ENABLE.put(0, 1),
            WAKE_UP_THS: WK_THS.put(0, ths),
            WAKE_UP_DUR: WAKE_DUR.put(0, self.wake_duration_samples),
            MD1_CFG: INT1_WU.put(0, 1),
        }

    def init(self) -> None:
        """Check the chip ID, reset, and write the configuration."""
        who = self.dev.read_u8(WHO_AM_I)
        if who != CHIP_ID:
            raise DeviceError(f"imu at 0x{self.dev.address:02x}: WHO_AM_I is 0x{who:02x}, "
                              f"expected 0x{CHIP_ID:02x} (LSM6DSOX); check the part and address")
        for reg, value in self._expected.items():
            self.dev.write_u8(reg, value)
        self._ready = True

    def read(self) -> ImuReading:
        """One burst read; re-initialises first if the part was lost or reset."""
        for attempt in range(2):
            if not self._ready:
                self.init()
            try:
                raw = self.dev.read(BURST_START, BURST_LEN)
                if self._config_lost(raw):
                    # The part lost power or was reset behind our back: configure again.
                    self.resets_seen += 1
                    self._ready = False
                    if attempt == 0:
                        continue
                    raise DeviceError("imu: configuration does not stick (reset again "
                                      "after reconfiguring); check the supply")
                return self._decode(raw)
            except (BusError, DeviceError):
                self._ready = False
                raise
        raise AssertionError("unreachable")

    def _config_lost(self, raw: bytes) -> bool:
        # Only when the chip ID is right: garbage is reported as garbage, not as a reset.
        return raw[0] == CHIP_ID and (
            raw[CTRL1_XL - BURST_START] != self._expected[CTRL1_XL]
            or raw[CTRL2_G - BURST_START] != self._expected[CTRL2_G])

    def _decode(self, raw: bytes) -> ImuReading:
        def at(reg):
            return raw[reg - BURST_START]

        if at(WHO_AM_I) != CHIP_ID:
            raise DeviceError(f"imu: inconsistent data (WHO_AM_I read 0x{at(WHO_AM_I):02x}); "
                              "the bus may be noisy, check wiring")
        if at(STATUS_REG) & 0xF8:
            raise DeviceError(f"imu: inconsistent data (STATUS 0x{at(STATUS_REG):02x}); "
                              "check wiring")

        def vec(reg, scale):
            return tuple(s16(at(reg + 2 * i), at(reg + 2 * i + 1)) * scale for i in range(3))

        accel = vec(OUTX_L_A, ACCEL_MG_PER_LSB[self.accel_range_g] / 1000 * G)
        gyro = vec(OUTX_L_G, GYRO_MDPS_PER_LSB[self.gyro_range_dps] / 1000)
        temp = TEMP_OFFSET_C + s16(at(OUT_TEMP_L), at(OUT_TEMP_L + 1)) / TEMP_LSB_PER_C
        return ImuReading(accel, gyro, temp, bool(WU_IA.get(at(WAKE_UP_SRC))))

    def probe(self) -> str:
        r = self.read()
        ax, ay, az = r.accel_ms2
        return (f"LSM6DSOX 0x{self.dev.address:02x}, accel ({ax:.2f}, {ay:.2f}, {az:.2f}) m/s^2, "
                f"{r.temperature_c:.1f} C")

"""I2C access for drivers: one device at one address on an smbus2-shaped bus.

The bus is smbus2.SMBus on boards and drivers.sim.i2c.SimI2CBus on the sim; both
raise OSError on a failed transfer. This is the one place that turns those into
`BusError`, with the device, the address and a hint in the message.
"""

import errno

from .errors import BusError

# What Linux I2C adapters report, and what a user can do about it.
_REASONS = {
    errno.EREMOTEIO: "no acknowledge (NACK)",
    errno.ENXIO: "no acknowledge (NACK)",
    errno.ETIMEDOUT: "bus timeout",
    errno.EIO: "I/O error",
    errno.EAGAIN: "bus busy (arbitration lost)",
}

MAX_BLOCK = 32  # SMBus block transfers carry at most 32 bytes


class I2CDevice:
    """Register reads and writes to one address; errors become `BusError`."""

    def __init__(self, bus, address: int, name: str, bus_name: str = "i2c"):
        self.bus = bus
        self.address = address
        self.name = name
        self.bus_name = bus_name

    def __repr__(self):
        return f"<I2CDevice {self.name} {self.bus_name}@0x{self.address:02x}>"

    def read(self, reg: int, length: int) -> bytes:
        if not 0 < length <= MAX_BLOCK:
            raise ValueError(f"block length {length} outside 1..{MAX_BLOCK}")
        try:
            data = self.bus.read_i2c_block_data(self.address, reg, length)
        except OSError as e:
            raise self._error(e, f"reading 0x{reg:02x}") from e
        return bytes(data)

    def write(self, reg: int, data: bytes) -> None:
        try:
            if len(data) == 1:
                self.bus.write_byte_data(self.address, reg, data[0])
            else:
                self.bus.write_i2c_block_data(self.address, reg, list(data))
        except OSError as e:
            raise self._error(e, f"writing 0x{reg:02x}") from e

    def read_u8(self, reg: int) -> int:
        return self.read(reg, 1)[0]

    def write_u8(self, reg: int, value: int) -> None:
        self.write(reg, bytes([value & 0xFF]))

    def _error(self, e: OSError, doing: str) -> BusError:
        reason = _REASONS.get(e.errno, e.strerror or str(e))
        return BusError(
            e.errno or errno.EIO,
            f"{self.name} at {self.bus_name} 0x{self.address:02x}: {reason} while {doing}; "
            "check the part is powered and wired, then run selftest",
        )

"""Register maps as data: a bit field names its register, position and width.

Driver and emulator import the same declarations, so a field cannot mean one thing
to the driver and another to the emulator.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Bits:
    """`width` bits at `shift` of an 8- or 16-bit register `reg`."""

    reg: int
    shift: int
    width: int = 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def get(self, value: int) -> int:
        return (value & self.mask) >> self.shift

    def put(self, value: int, field: int) -> int:
        if not 0 <= field < (1 << self.width):
            raise ValueError(f"{field} does not fit in {self.width} bit(s)")
        return (value & ~self.mask) | (field << self.shift)


def code_for(table: dict, value, what: str):
    """Look up a register code for a physical setting; the error lists what is allowed."""
    try:
        return table[value]
    except KeyError:
        allowed = ", ".join(str(k) for k in sorted(table))
        raise ValueError(f"unsupported {what} {value}; choose one of {allowed}") from None


def s16(lo: int, hi: int) -> int:
    """Two bytes, little end first, as a signed 16-bit integer."""
    v = lo | (hi << 8)
    return v - 0x10000 if v & 0x8000 else v

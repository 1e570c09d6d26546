"""A simulated I2C bus with register-level device emulators and fault injection.

It has the smbus2.SMBus methods the drivers use and fails the way Linux I2C fails:
OSError(EREMOTEIO) for a NACK, OSError(ETIMEDOUT) for a stuck bus. Faults are set
per address: "nack" (transient NACKs), "timeout", "garbage" (random bytes), "gone"
(the part lost power: NACKs, and comes back reset to power-on defaults).
"""

import errno
import importlib
import os
import random
import threading

FAULTS = ("nack", "timeout", "garbage", "gone")


def emulator_class(part) -> type:
    """The emulator a drivers.parts.Part names ("module:Class" under drivers.sim)."""
    module, _, name = part.emulator.partition(":")
    return getattr(importlib.import_module(f".{module}", __package__), name)


class RegisterEmulator:
    """Byte-addressed register file with auto-increment; subclasses add the physics."""

    size = 0x100

    def __init__(self):
        self.regs = bytearray(self.size)
        self.power_on_reset()

    def power_on_reset(self) -> None:
        self.regs[:] = bytes(self.size)

    def before_read(self, reg: int, length: int) -> None:
        """Refresh output registers from the physical state."""

    def after_read(self, reg: int, length: int) -> None:
        """Clear-on-read side effects."""

    def after_write(self, reg: int, data: bytes) -> None:
        """Side effects of a write (reset commands, interrupt configuration)."""

    def read(self, reg: int, length: int) -> bytes:
        self.before_read(reg, length)
        out = bytes(self.regs[(reg + i) % self.size] for i in range(length))
        self.after_read(reg, length)
        return out

    def write(self, reg: int, data: bytes) -> None:
        for i, b in enumerate(data):
            self.regs[(reg + i) % self.size] = b
        self.after_write(reg, bytes(data))


class SimI2CBus:
    """smbus2.SMBus-shaped bus holding emulators by address."""

    def __init__(self, name: str = "sim-i2c", seed: int = 0):
        self.name = name
        self.devices: dict[int, RegisterEmulator] = {}
        self.faults: dict[int, str] = {}
        self.transfers = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def attach(self, address: int, emulator: RegisterEmulator) -> RegisterEmulator:
        self.devices[address] = emulator
        return emulator

    def set_fault(self, address: int, kind: str | None) -> None:
        """Inject `kind` (one of FAULTS) at `address`; None or "clear" removes it."""
        if kind in (None, "clear"):
            previous = self.faults.pop(address, None)
            if previous == "gone" and address in self.devices:
                self.devices[address].power_on_reset()  # back from a power loss
            return
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of {', '.join(FAULTS)} or clear")
        self.faults[address] = kind

    def _device(self, address: int) -> RegisterEmulator:
        self.transfers += 1
        fault = self.faults.get(address)
        if fault in ("nack", "gone") or address not in self.devices:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        if fault == "timeout":
            raise OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
        return self.devices[address]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int, force=None) -> list[int]:
        with self._lock:
            dev = self._device(i2c_addr)
            if self.faults.get(i2c_addr) == "garbage":
                return [self._rng.randrange(256) for _ in range(length)]
            return list(dev.read(register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data, force=None) -> None:
        with self._lock:
            dev = self._device(i2c_addr)
            if self.faults.get(i2c_addr) == "garbage":
                return  # a corrupted write lands nowhere useful
            dev.write(register, bytes(data))

    def read_byte_data(self, i2c_addr: int, register: int, force=None) -> int:
        return self.read_i2c_block_data(i2c_addr, register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int, force=None) -> None:
        self.write_i2c_block_data(i2c_addr, register, [value])

    def close(self) -> None:
        pass

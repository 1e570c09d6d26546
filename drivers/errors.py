"""One exception root for the whole firmware; leaves also subclass a builtin.

Native errors (OSError from smbus2, PortAudio, libcamera) are translated into these
in one place per bus, so callers catch `GlassesError` and never a library's own type.
"""


class GlassesError(Exception):
    """Root of every error the firmware raises on purpose."""


class ConfigError(GlassesError, ValueError):
    """A board file, setting or argument is wrong; the message names where and what."""


class BusError(GlassesError, OSError):
    """A bus transfer failed (NACK, timeout, device gone); usually transient."""

    def __str__(self):
        # OSError would print "[Errno 121] ..."; the message already says what happened.
        return self.strerror or super().__str__()


class DeviceMissing(BusError):
    """A bus or device endpoint the board file names is not on this machine (no /dev/i2c-1,
    no sound card, no camera stack): the firmware runs without it and says why."""


class StorageFull(GlassesError, OSError):
    """The data directory's disk is full; the message says how full and what to do."""

    def __str__(self):
        return self.strerror or super().__str__()


class DeviceError(GlassesError, RuntimeError):
    """A device answered, but not as the part we expect (wrong chip ID, garbage, reset)."""


class DeviceTimeout(GlassesError, TimeoutError):
    """A device did not answer before its deadline."""


class Unsupported(GlassesError, NotImplementedError):
    """The board has no such capability (for example `sim` commands on a real board)."""


class Unreachable(GlassesError, ConnectionError):
    """A device outside the glasses (the paired phone) is not there or did not answer."""


class SaidError(GlassesError, RuntimeError):
    """An action the wearer asked for that cannot be done now; the assistant says the message
    as it is (`say`: capitalised, a full stop), not its generic apology."""

    @property
    def say(self) -> str:
        text = str(self)
        return text[:1].upper() + text[1:] + "."

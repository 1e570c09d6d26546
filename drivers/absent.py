"""What stands in for a bus or endpoint the machine does not have.

A board file names real endpoints (an I2C bus, a GPIO chip, a sound card, a camera); on a
machine that lacks one (a first boot before config.txt took effect, a missing apt
package, QEMU's virt machine) the firmware still starts: the console, the assistant and
whatever else is there keep working, selftest reports each device that depends on the
missing endpoint as missing with the reason, and every use of it raises DeviceMissing
with that reason instead of crashing the firmware.
"""

import errno

from .errors import DeviceMissing


class Absent:
    """Any use (a call, an attribute) raises DeviceMissing naming the endpoint and why."""

    def __init__(self, what: str, reason: str):
        self._what, self._reason = what, reason
        # The two picamera2.Picamera2 attributes the camera driver reads when it is built.
        self.options, self.camera_properties = {}, {}

    def error(self) -> DeviceMissing:
        return DeviceMissing(errno.ENODEV, f"{self._what} is missing: {self._reason}")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise self.error()

    def __call__(self, *args, **kwargs):
        raise self.error()

    def close(self) -> None:
        pass

"""The SoC's own power controls: a load level and halt with a timed wake.

On the Pi the level picks the cpufreq governor and halt arms the RTC wake alarm and
powers off (with POWER_OFF_ON_HALT=1 the board then draws about 0.01 W). On the sim
bring-up passes a halt that only records the state, so the power model can charge it.
"""

import logging
import subprocess
from pathlib import Path

from .errors import BusError

log = logging.getLogger(__name__)

LEVELS = ("idle", "light", "load", "halt")
GOVERNOR = {"idle": "powersave", "light": "schedutil", "load": "performance"}


class Soc:
    """`level` is what the firmware asks of the SoC; `set_level` applies it."""

    def __init__(self, governor_paths=(), rtc_wakealarm=None, poweroff=None):
        self.level = "idle"
        self.governor_paths = [Path(p) for p in governor_paths]
        self.rtc_wakealarm = Path(rtc_wakealarm) if rtc_wakealarm else None
        self._poweroff = poweroff if poweroff is not None else self._systemd_poweroff
        self.halted = False

    def set_level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown SoC level '{level}'; one of {', '.join(LEVELS)}")
        if level == "halt":
            raise ValueError("use halt() to halt the SoC")
        self.level = level
        for path in self.governor_paths:
            try:
                path.write_text(GOVERNOR[level])
            except OSError as e:
                log.warning("cannot set %s to %s: %s", path, GOVERNOR[level], e)

    def halt(self, wake_at_epoch_s: float | None) -> None:
        """Arm the RTC alarm (if given) and power off. Wake: RTC, power button, or wear."""
        if wake_at_epoch_s is not None and self.rtc_wakealarm is not None:
            try:
                self.rtc_wakealarm.write_text("0")
                self.rtc_wakealarm.write_text(str(int(wake_at_epoch_s)))
            except OSError as e:
                raise BusError(e.errno or 5, f"cannot arm the RTC wake alarm at {self.rtc_wakealarm}: "
                               f"{e.strerror}; check the RTC and permissions") from e
        self.level = "halt"
        self.halted = True
        self._poweroff()

    def wake(self) -> None:
        """Only meaningful where halt returns (the sim): back to idle."""
        self.halted = False
        self.level = "idle"

    @staticmethod
    def _systemd_poweroff() -> None:
        subprocess.run(["systemctl", "poweroff"], check=False, timeout=30)

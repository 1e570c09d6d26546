"""SoC temperature from a Linux thermal zone (millidegrees Celsius in a text file)."""

from pathlib import Path

from .errors import BusError, DeviceError


class ThermalZone:
    """Reads `/sys/class/thermal/thermal_zoneN/temp` (or the sim's file of the same format)."""

    name = "soc_thermal"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read_c(self) -> float:
        try:
            text = self.path.read_text().strip()
        except OSError as e:
            raise BusError(e.errno or 5, f"soc_thermal: cannot read {self.path}: {e.strerror}; "
                           "is the thermal driver loaded?") from e
        try:
            return int(text) / 1000.0
        except ValueError:
            raise DeviceError(f"soc_thermal: {self.path} holds {text[:20]!r}, "
                              "expected millidegrees") from None

    def probe(self) -> str:
        return f"{self.read_c():.1f} C"

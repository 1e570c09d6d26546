"""Power table arithmetic: component states times the board file's watts.

Used twice with the same numbers: by the sim, which turns the draw of what its
endpoints have powered into battery drain, and by the firmware, which attributes energy
to modes and features for `simulate-day`.
"""

from dataclasses import dataclass

from .errors import ConfigError

COMPONENTS = ("soc", "camera", "microphones", "speaker", "imu", "leds")


@dataclass(frozen=True)
class ComponentStates:
    soc: str = "idle"             # halt | idle | light | load
    camera: str = "off"           # off | streaming | recording
    microphones: str = "off"      # off | on
    speaker: str = "off"          # off | idle | playing
    imu: str = "on"               # off | low_power | on
    leds: tuple[str, ...] = ()    # lit LEDs: capture, status

    def replace(self, **kw) -> "ComponentStates":
        return ComponentStates(**{**self.__dict__, **kw})


class PowerTable:
    """The board's `[power.*]` tables, checked once."""

    def __init__(self, power: dict):
        self.watts = {name: dict(entry.watts) for name, entry in power.items()}
        for name in COMPONENTS:
            if name not in self.watts:
                raise ConfigError(f"power table has no '{name}'")

    def component_w(self, component: str, state: str) -> float:
        try:
            return self.watts[component][state]
        except KeyError:
            raise ConfigError(f"power table '{component}' has no state '{state}'; it has "
                              f"{', '.join(self.watts[component])}") from None

    def total_w(self, s: ComponentStates) -> float:
        if s.soc == "halt":
            return self.component_w("soc", "halt")  # everything else is unpowered
        w = sum(self.component_w(c, getattr(s, c)) for c in ("soc", "camera", "microphones",
                                                              "speaker", "imu"))
        return w + sum(self.component_w("leds", led) for led in s.leds)

"""Energy accounting by mode and by feature, from the board's power table."""

from collections import defaultdict
from dataclasses import dataclass

from glasses_firmware.drivers.power import PowerTable

from . import modes as m


@dataclass(frozen=True)
class Activity:
    """What the glasses are doing besides their mode, for charging energy to a feature."""

    video: bool = False
    meeting: bool = False
    music: bool = False


def feature_of(mode: str, activity: Activity) -> str:
    """The feature the energy of this moment belongs to."""
    if activity.video:
        return "video"
    if mode == m.CAPTURE:
        return "photo"
    if mode == m.INTERACTIVE:
        return "assistant"
    if activity.meeting:
        return "meeting"
    if activity.music:
        return "music"
    return "sleep" if mode in (m.SLEEP, m.CRITICAL) else "standby"


class EnergyMeter:
    """Integrates the board's draw; `tick()` before anything changes what is powered.

    `component_states()` is the board's (what is powered now), `mode()` the machine's,
    `activity()` what the services are doing.
    """

    def __init__(self, power_table: dict, clock, component_states, mode, activity):
        self.table = PowerTable(power_table)
        self.clock = clock
        self._states, self._mode, self._activity = component_states, mode, activity
        self.by_mode: dict[str, float] = defaultdict(float)
        self.by_feature: dict[str, float] = defaultdict(float)
        self.seconds_by_mode: dict[str, float] = defaultdict(float)
        self._last = clock.monotonic()
        self._observe()

    def _observe(self) -> None:
        self.watts = self.table.total_w(self._states())
        self._mode_now = self._mode()
        self._feature_now = feature_of(self._mode_now, self._activity())

    def tick(self) -> None:
        """Charge the time since the last tick to what was powered then; observe anew."""
        now = self.clock.monotonic()
        dt = max(0.0, now - self._last)
        self._last = now
        wh = self.watts * dt / 3600
        self.by_mode[self._mode_now] += wh
        self.seconds_by_mode[self._mode_now] += dt
        self.by_feature[self._feature_now] += wh
        self._observe()

    @property
    def total_wh(self) -> float:
        return sum(self.by_mode.values())

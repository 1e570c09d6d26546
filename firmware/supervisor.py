"""From conditions to mode events: wear, battery, charger and temperature.

Level-triggered: after every sample the supervisor compares what the conditions call
for with the current mode and fires the declared events that close the gap. A
condition whose event the current mode does not accept (low battery during a meeting)
waits; it is applied when the activity ends and the machine returns to its base mode.
"""

import logging
from dataclasses import dataclass

from . import modes as m

log = logging.getLogger("glasses.supervisor")

POLICIES = ("scheduler", "always-on")


@dataclass(frozen=True)
class Conditions:
    worn: bool
    charging: bool
    percent: float | None
    temperature_c: float | None


class Supervisor:
    """Keeps the mode machine in line with the conditions the monitor reports."""

    def __init__(self, config, machine: m.ModeMachine, policy: str = "scheduler"):
        if policy not in POLICIES:
            raise ValueError(f"unknown policy '{policy}'; one of {', '.join(POLICIES)}")
        self.config = config
        self.machine = machine
        self.policy = policy
        self.conditions = Conditions(worn=True, charging=False, percent=None, temperature_c=None)

    def low(self) -> bool:
        p = self.conditions.percent
        return p is not None and p <= self.config.battery.low_percent

    def critical(self) -> bool:
        c = self.conditions
        return c.percent is not None and c.percent <= self.config.battery.critical_percent \
            and not c.charging

    def hot(self) -> bool:
        t = self.conditions.temperature_c
        if t is None:
            return False
        # Hysteresis: leave HOT only 5 C below the threshold, so the mode does not flap.
        limit = self.config.thermal.hot_c - (5 if self.machine.mode == m.HOT else 0)
        return t >= limit

    def base_mode(self) -> str:
        if self.conditions.charging:
            return m.CHARGING
        return m.LOW_BATTERY if self.low() else m.STANDBY

    def worn(self) -> bool:
        # The always-on baseline never sleeps: it is what "no power management" costs.
        return self.conditions.worn or self.policy == "always-on"

    def wanted(self) -> list[tuple[str, str]]:
        """The events the conditions call for now, most urgent first, with reasons."""
        c, mode = self.conditions, self.machine.mode
        out = []
        if self.critical() and mode != m.CRITICAL:
            out.append(("battery_critical", f"battery {c.percent:.0f} %"))
        if c.charging and mode == m.CRITICAL:
            out.append(("charger_on", "charger connected"))
        if self.hot() and mode != m.HOT:
            out.append(("hot", f"{c.temperature_c:.0f} C"))
        if not self.hot() and mode == m.HOT:
            out.append(("cool", f"{c.temperature_c:.0f} C"))
        if not self.worn() and mode != m.SLEEP:
            out.append(("unworn", "taken off"))
        if self.worn() and mode == m.SLEEP:
            out.append(("worn", "put on"))
        if c.charging and mode in (m.STANDBY, m.LOW_BATTERY):
            out.append(("charger_on", "charger connected"))
        if not c.charging and mode == m.CHARGING:
            out.append(("charger_off", "charger removed"))
        if self.low() and mode == m.STANDBY:
            out.append(("battery_low", f"battery {c.percent:.0f} %"))
        if not self.low() and mode == m.LOW_BATTERY:
            out.append(("battery_ok", f"battery {c.percent:.0f} %"))
        return out

    def update(self, conditions: Conditions) -> list[str]:
        """Apply new conditions; returns the events fired."""
        self.conditions = conditions
        fired = []
        for _ in range(6):  # each pass moves one step; the table has no long chains
            # Declared "stay" rows (a meeting goes on when the glasses come off) are not moves.
            step = next(((e, r) for e, r in self.wanted() if self.machine.allowed(e)
                         and m.TRANSITIONS[(self.machine.mode, e)] != self.machine.mode), None)
            if step is None:
                break
            self.machine.fire(*step)
            fired.append(step[0])
        return fired

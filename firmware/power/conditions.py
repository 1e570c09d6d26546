"""From conditions to mode events: wear, battery, charger, temperature, and idleness.

Level-triggered: after every sample the scheduler compares what the conditions call for
with the current mode and fires the declared events that close the gap. A condition whose
event the current mode does not accept (low battery during a meeting) waits; it is applied
when the activity ends and the machine returns to its base mode.

The power plan is "scheduler" (the product) or "always-on" (the baseline simulate-day
compares against: never sleeps when taken off, never stops a video for the mode).
"""

import logging
from dataclasses import dataclass

from . import modes as m

log = logging.getLogger("glasses.power")

PLANS = ("scheduler", "always-on")


@dataclass(frozen=True)
class Conditions:
    worn: bool
    charging: bool
    percent: float | None
    temperature_c: float | None


@dataclass(frozen=True)
class Thresholds:
    """From the board file: where low, critical and hot begin."""

    low_percent: float
    critical_percent: float
    hot_c: float
    hot_hysteresis_c: float = 5.0   # leave HOT only this far below hot_c: no flapping

    @classmethod
    def from_board(cls, config) -> "Thresholds":
        return cls(config.battery.low_percent, config.battery.critical_percent,
                   config.thermal.hot_c)


class ModeScheduler:
    """Keeps the mode machine in line with the conditions and the wearer's activity."""

    def __init__(self, thresholds: Thresholds, machine: m.ModeMachine, clock,
                 plan: str = "scheduler"):
        if plan not in PLANS:
            raise ValueError(f"unknown power plan '{plan}'; one of {', '.join(PLANS)}")
        self.t = thresholds
        self.machine = machine
        self.clock = clock
        self.plan = plan
        self.conditions = Conditions(worn=True, charging=False, percent=None, temperature_c=None)
        self._active_at = clock.monotonic()
        machine.subscribe(lambda *change: self.touch())

    def low(self) -> bool:
        p = self.conditions.percent
        return p is not None and p <= self.t.low_percent

    def critical(self) -> bool:
        c = self.conditions
        return c.percent is not None and c.percent <= self.t.critical_percent and not c.charging

    def hot(self) -> bool:
        t = self.conditions.temperature_c
        if t is None:
            return False
        limit = self.t.hot_c - (self.t.hot_hysteresis_c if self.machine.mode == m.HOT else 0)
        return t >= limit

    def base_mode(self) -> str:
        if self.conditions.charging:
            return m.CHARGING
        return m.LOW_BATTERY if self.low() else m.STANDBY

    def worn(self) -> bool:
        # The always-on baseline never sleeps: it is what "no power management" costs.
        return self.conditions.worn or self.plan == "always-on"

    # Activity: speech, a button, an answer being spoken. INTERACTIVE ends after the
    # idle timeout of its policy (shorter on a low battery), enforced here.
    def touch(self) -> None:
        self._active_at = self.clock.monotonic()

    def idle_timeout_s(self) -> float:
        base = self.base_mode()
        return min(m.POLICY[m.INTERACTIVE].idle_timeout_s, m.POLICY[base].idle_timeout_s)

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
        idle_s = self.clock.monotonic() - self._active_at
        if mode == m.INTERACTIVE and idle_s > self.idle_timeout_s():
            out.append(("turn_done", f"idle {idle_s:.0f} s"))
        return out

    def update(self, conditions: Conditions | None = None) -> list[str]:
        """Apply new conditions (or re-check the old ones); returns the events fired."""
        if conditions is not None:
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

"""The sim's battery physics: what is powered drains the pack, seen through the gauge.

Each tick integrates the board's power table over the component states since the
last tick and moves the MAX17048 emulator's state of charge and charge rate, so the
firmware reads its own drain through the real driver. In virtual time every clock
jump is integrated exactly (nothing changes during a jump); in real time a thread
ticks every second.
"""

import threading

from glasses_firmware.drivers.power import PowerTable
from glasses_firmware.drivers.waits import joined

CHARGE_PCT_PER_H = 40.0   # what the charger puts in (about 7.4 W into 18.5 Wh)
TICK_S = 1.0


class SimPower:
    """Battery drain of the sim board. `states_fn() -> ComponentStates` is wired by bring-up."""

    def __init__(self, config, hardware, clock):
        self.table = PowerTable(config.power)
        self.capacity_wh = config.battery.capacity_mah / 1000 * config.battery.nominal_v
        self.hardware = hardware
        self.clock = clock
        self.states_fn = None
        self.energy_wh = 0.0
        self.watts = 0.0
        self._last = clock.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None

    def start(self, states_fn) -> None:
        self.states_fn = states_fn
        self._last = self.clock.monotonic()
        if getattr(self.clock, "realtime", True):
            self._thread = threading.Thread(target=self._run, name="sim-power", daemon=True)
            self._thread.start()
        else:
            self.clock.listeners.append(self.tick)

    def _run(self) -> None:
        while self.clock.sleep(TICK_S, self._stop):
            self.tick()

    def tick(self) -> None:
        if self.states_fn is None:
            return
        with self._lock:
            now = self.clock.monotonic()
            dt_h = max(0.0, now - self._last) / 3600
            self._last = now
            self.watts = self.table.total_w(self.states_fn())
            self.energy_wh += self.watts * dt_h
            gauge = self.hardware.fuel_gauge
            drain_pct_h = self.watts / self.capacity_wh * 100
            rate = (CHARGE_PCT_PER_H if self.hardware.charger else 0.0) - drain_pct_h
            gauge.set_rate(rate)
            if dt_h:
                gauge.set_percent(gauge.percent + rate * dt_h)

    def close(self) -> None:
        self._stop.set()
        if self.tick in getattr(self.clock, "listeners", []):
            self.clock.listeners.remove(self.tick)
        if self._thread is not None:
            joined(self._thread, 2.0)

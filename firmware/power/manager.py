"""What a mode does to the SoC: its power level, the boot after a halt, and the halt itself.

SLEEP and CRITICAL halt the board (the Pi has no suspend-to-RAM; it wakes by RTC alarm,
wear or a button), but only after every service that writes files has closed them: the
services register those steps here.
"""

import asyncio
import logging

from glasses_firmware.drivers.errors import GlassesError

from . import modes as m

log = logging.getLogger("glasses.power")

HALT_TIMEOUT_S = 40.0   # systemctl poweroff is given 30 s itself
BOOT_S = 25.0  # a CM5 from halt to a running firmware (Lite image, measured range 15-30 s)


class PowerManager:
    """Follows the mode machine: SoC level per mode's policy, boot accounting, power-down."""

    def __init__(self, soc, modes: m.ModeMachine, events, blocking, boot_s: float = BOOT_S):
        self.soc = soc
        self.modes = modes
        self.events = events
        self.blocking = blocking
        self.boot_s = boot_s
        self._steps: list[tuple[str, object]] = []
        self._boot_until = None     # loop time when the boot in progress ends
        self._tasks: set[asyncio.Task] = set()
        modes.subscribe(self._changed)

    def add_power_down_step(self, name: str, step) -> None:
        """`await step(mode)` before a halt; steps run in order, each even if one failed."""
        self._steps.append((name, step))

    @property
    def booting(self) -> bool:
        loop = asyncio.get_running_loop()
        return self._boot_until is not None and loop.time() < self._boot_until

    def _changed(self, old: str, new: str, event: str, reason: str) -> None:
        policy = m.POLICY[new]
        loop = asyncio.get_running_loop()
        if policy.soc == "halt":
            task = loop.create_task(self._power_down(new), name="power-down")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if self.soc.halted:
            # Waking from halt is a boot: charge it at full load before the mode's level.
            self.soc.wake()
            self.soc.set_level("load")
            self._boot_until = loop.time() + self.boot_s
            loop.call_later(self.boot_s, self._settle)
        elif not self.booting:
            self.soc.set_level(policy.soc)

    def _settle(self) -> None:
        policy = self.modes.policy
        if policy.soc != "halt" and not self.soc.halted:
            self.soc.set_level(policy.soc)

    async def _power_down(self, mode: str) -> None:
        # A camera fault must not leave a meeting recording open when the battery dies.
        for name, step in self._steps:
            try:
                await step(mode)
            except GlassesError as e:
                log.warning("power down: %s: %s", name, e)
                self.events.emit("fault", f"{name} while powering down: {e}")
        if self.modes.mode == mode:
            self.events.emit("power", f"halt ({mode})")
            await self.blocking.run(self.soc.halt, None, timeout_s=HALT_TIMEOUT_S)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

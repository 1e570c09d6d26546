"""LEDs: the capture (privacy) LED with its read-back line, and the status LED.

The read-back is a photodiode and comparator on the capture LED, wired to an input
pin: it reads high only when the LED really emits. The camera's interlock
(drivers/interlock.py) lights it with `on()` before streaming and asks `confirmed()`
for every frame, so a broken LED, or one taped over, means no frames.
"""

from .errors import DeviceError


class PrivacyLED:
    """The capture LED. `led` is a gpiozero LED, `readback` a gpiozero input device."""

    def __init__(self, led, readback, clock, settle_s: float = 0.002):
        self.led = led
        self.readback = readback
        self.clock = clock
        self.settle_s = settle_s  # comparator response time before we trust the read-back

    @property
    def driven(self) -> bool:
        return bool(self.led.is_lit)

    @property
    def reads_on(self) -> bool:
        return bool(self.readback.is_active)

    def confirmed(self) -> bool:
        """True only when the LED is driven on and reads back as on."""
        return self.driven and self.reads_on

    def on(self) -> None:
        """Light the LED and check it; raises DeviceError (LED left off) if the read-back does not follow."""
        if not self.driven and self.reads_on:
            # A read-back that is high while the LED is dark would confirm anything; give
            # it one settle time first, as it may still be falling from a recent off().
            self.clock.sleep(self.settle_s)
            if self.reads_on:
                raise DeviceError("capture LED read-back reads lit while the LED is off (stuck "
                                  "comparator), so the camera gives no frames; repair the read-back line")
        self.led.on()
        self.clock.sleep(self.settle_s)
        if not self.reads_on:
            self.led.off()
            raise DeviceError("capture LED does not read back as lit (broken or covered), so the "
                              "camera gives no frames; uncover or repair the LED")

    def off(self) -> None:
        self.led.off()

    def probe(self) -> str:
        """Toggle the LED briefly and check that the read-back follows both ways."""
        was = self.driven
        try:
            self.led.on()
            self.clock.sleep(self.settle_s)
            lit = self.reads_on
            self.led.off()
            self.clock.sleep(self.settle_s)
            dark = not self.reads_on
        finally:
            self.led.value = was
        if not lit:
            raise DeviceError("capture LED read-back stays low when driven on (broken or covered LED); "
                              "uncover or repair the LED")
        if not dark:
            raise DeviceError("capture LED read-back stays high when driven off (stuck comparator); "
                              "repair the read-back line")
        return f"pin {self.led.pin}, read-back pin {self.readback.pin} follows"

    def close(self) -> None:
        self.led.close()
        self.readback.close()


class StatusLED:
    """The status LED: on, off, or blinking (gpiozero's own background blink)."""

    def __init__(self, led):
        self.led = led

    def on(self) -> None:
        self.led.on()

    def off(self) -> None:
        self.led.off()

    def blink(self, on_s: float = 0.1, off_s: float = 0.9) -> None:
        self.led.blink(on_time=on_s, off_time=off_s, background=True)

    @property
    def lit(self) -> bool:
        return bool(self.led.is_lit)

    def probe(self) -> str:
        return f"pin {self.led.pin}, {'on' if self.lit else 'off'}"

    def close(self) -> None:
        self.led.close()

"""Simulated GPIO: gpiozero's mock pin factory, with the carrier's wiring.

The capture LED's output pin is connected to its read-back input, as the photodiode
and comparator connect them on the real carrier; `break_readback` cuts that link
(a broken or covered LED) so tests can check the privacy interlock.
"""

from gpiozero.pins.mock import MockConnectedPin, MockFactory, MockPin


class SimGPIO:
    """Owns the MockFactory that every gpiozero device on the sim board uses."""

    def __init__(self):
        self.factory = MockFactory()
        self._led_pin = None
        self._readback_pin = None

    def pin(self, number: int) -> MockPin:
        return self.factory.pin(number)

    def wire_readback(self, led_pin: int, readback_pin: int) -> None:
        """Connect the LED output to its read-back input (call before devices open them)."""
        self._readback_pin = self.factory.pin(readback_pin, pin_class=MockPin)
        self._led_pin = self.factory.pin(led_pin, pin_class=MockConnectedPin,
                                         input_pin=self._readback_pin)

    def break_readback(self, stuck_high: bool = False) -> None:
        """The LED no longer reaches its photodiode; the read-back sticks low (or high)."""
        self._led_pin.input_pin = None
        self._readback_pin.drive_high() if stuck_high else self._readback_pin.drive_low()

    def repair_readback(self) -> None:
        self._led_pin.input_pin = self._readback_pin
        lit = self._led_pin.state
        self._readback_pin.drive_high() if lit else self._readback_pin.drive_low()

    @property
    def readback_broken(self) -> bool:
        return self._led_pin is not None and self._led_pin.input_pin is None

    def press(self, pin: int) -> None:
        """Press a button wired active-low with a pull-up."""
        self.factory.pin(pin).drive_low()

    def release(self, pin: int) -> None:
        self.factory.pin(pin).drive_high()

    def close(self) -> None:
        self.factory.reset()

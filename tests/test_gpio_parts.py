"""Buttons (gestures on the clock) and the privacy LED's read-back, on mock pins."""

import threading

import pytest
from gpiozero import LED, Button, DigitalInputDevice

from glasses_firmware.drivers.buttons import GestureButton, GestureDetector
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import DeviceError
from glasses_firmware.drivers.leds import PrivacyLED
from glasses_firmware.drivers.sim.gpio import SimGPIO


def test_detector_click_double_long():
    d = GestureDetector(long_press_s=0.8, double_window_s=0.35)
    assert d.press(0.0) == ["press"]
    assert d.release(0.1) == ["release"]
    assert d.expire(0.3) == []
    assert d.expire(0.46) == ["click"]
    d.press(1.0), d.release(1.1)
    assert d.press(1.2) == ["press"]
    assert d.release(1.3) == ["release", "double"]
    assert d.expire(5.0) == []
    d.press(6.0)
    assert d.expire(6.79) == []
    assert d.expire(6.8) == ["long"]
    assert d.release(8.0) == ["release"]
    assert d.deadline is None


def test_detector_ignores_release_without_press():
    assert GestureDetector().release(1.0) == []


@pytest.fixture
def gpio():
    g = SimGPIO()
    yield g
    g.close()


def test_gesture_button_on_virtual_time(gpio):
    clock = SimClock(realtime=False)
    seen = []
    got = threading.Event()

    def on_gesture(name, gesture):
        seen.append((name, gesture))
        if gesture in ("click", "long"):
            got.set()

    device = Button(5, pull_up=True, bounce_time=None, pin_factory=gpio.factory)
    button = GestureButton("capture", device, clock, on_gesture, long_press_s=0.8, double_window_s=0.35)
    try:
        gpio.press(5)
        clock.advance(0.1)
        gpio.release(5)
        assert not got.wait(0.2)      # virtual time has not passed the double window
        clock.advance(0.5)
        assert got.wait(2.0)
        assert seen == [("capture", "press"), ("capture", "release"), ("capture", "click")]
        got.clear(), seen.clear()
        gpio.press(5)
        clock.advance(1.0)
        assert got.wait(2.0)
        assert seen[-1] == ("capture", "long") and button.is_pressed
        gpio.release(5)
    finally:
        button.close()
        button.close()  # idempotent


def privacy_led(gpio, clock):
    gpio.wire_readback(12, 13)
    return PrivacyLED(LED(12, pin_factory=gpio.factory),
                      DigitalInputDevice(13, pull_up=False, pin_factory=gpio.factory), clock)


def test_privacy_led_reads_back(gpio):
    led = privacy_led(gpio, SimClock())
    assert not led.confirmed()
    led.on()
    assert led.confirmed()
    led.off()
    assert not led.confirmed() and not led.reads_on
    assert "follows" in led.probe()


def test_broken_privacy_led_is_refused_and_left_off(gpio):
    led = privacy_led(gpio, SimClock())
    gpio.break_readback()
    with pytest.raises(DeviceError, match="capture LED does not read back"):
        led.on()
    assert not led.driven and not led.confirmed()
    with pytest.raises(DeviceError, match="stays low"):
        led.probe()
    gpio.break_readback(stuck_high=True)
    with pytest.raises(DeviceError, match="stays high"):
        led.probe()
    with pytest.raises(DeviceError, match="reads lit while the LED is off"):
        led.on()  # a read-back that is always high proves nothing
    assert not led.driven
    gpio.repair_readback()
    led.on()
    assert led.confirmed()

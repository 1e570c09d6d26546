"""The simulated board's hardware: emulators, mock pins, scene camera, WAV microphones.

Bring-up takes its buses and endpoints exactly as it takes the real ones. The methods
below are the physical world (put the glasses on, drain the battery, break a part);
the console's `sim ...` commands call them.
"""

import math
import threading
from pathlib import Path

from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.drivers.parts import ROLES, find
from glasses_firmware.drivers.waits import joined

from .audio import SimAudioSource, list_played, sim_input_stream_factory, sim_output_stream_factory
from .camera import SimPicamera2, sim_encoder_factory
from .gpio import SimGPIO
from .i2c import FAULTS, SimI2CBus, emulator_class
from .power import SimPower
from .scene import Scene

G = 9.80665
DEVICES = ("imu", "fuel_gauge", "camera", "microphones")
HEAD_MOVE_S = 60.0


class SimHardware:
    """Everything below the drivers on the sim board, plus the knobs of the physical world."""

    def __init__(self, config, data_dir: Path, clock):
        spec = config.sim
        if spec is None:
            raise ConfigError(f"{config.path}: a board with simulated parts needs a [sim] table")
        self.config = config
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.gpio = SimGPIO()
        led = config.leds["capture"]
        self.gpio.wire_readback(led.pin, led.readback_pin)
        for button in config.buttons.values():
            self.gpio.pin(button.pin)  # created before gpiozero pulls them up
        self._charger_pin = self.gpio.pin(config.battery.charger_pin) \
            if config.battery.charger_pin >= 0 else None
        self.i2c = SimI2CBus(f"sim-i2c-{config.i2c.bus}")
        self.imu = self._attach("imu")
        self.fuel_gauge = self._attach("fuel_gauge", percent=spec.battery_percent)
        self.audio_source = SimAudioSource(clock, rate_hz=config.audio.rate_hz,
                                           channels=config.audio.channels)
        self.speaker_dir = self.data_dir / "sim" / "speaker"
        self.speaker_dir.mkdir(parents=True, exist_ok=True)
        self.mic_stream_factory = sim_input_stream_factory(self.audio_source, clock)
        self.speaker_stream_factory = sim_output_stream_factory(self.speaker_dir, clock)
        self.scene = Scene.parse(spec.scene)
        self.picam = SimPicamera2(self.scene, clock, sensor=config.camera.sensor,
                                  sensor_size=config.camera.still_size)
        self.encoder_factory = sim_encoder_factory
        # The wearer's phone and the Bluetooth that reaches it: set by bring-up when the board
        # has a [bluetooth] table (drivers/sim/bluetooth.py); None otherwise.
        self.bluetooth = self.phone = None
        self.thermal_path = self.data_dir / "sim" / "thermal_zone0" / "temp"
        self.thermal_path.parent.mkdir(parents=True, exist_ok=True)
        self.charger = False
        self.power = SimPower(config, self, clock)
        self.set_temperature(spec.temperature_c)
        self.set_worn(spec.worn)
        self._stop = threading.Event()
        self._wearer_thread = threading.Thread(target=self._wearer, name="sim-wearer", daemon=True)
        self._wearer_thread.start()

    def _attach(self, role: str, **state):
        """The emulator of the part the board file names for `role`, on the bus and its pin."""
        spec = getattr(self.config, role)
        irq_pin = ROLES[role].irq_pin
        emulator = emulator_class(find(role, spec.part, self.config.path))(
            **{irq_pin: self.gpio.pin(getattr(spec, irq_pin))}, **state)
        return self.i2c.attach(spec.address, emulator)

    # The physical world.
    def set_worn(self, worn: bool) -> None:
        """Worn: a nod of the head, then upright. Off: folded on a table, lenses down."""
        self.worn = worn
        if worn:
            self.nod()
        else:
            self.imu.set_acceleration(0.0, 0.0, -G)

    def nod(self) -> None:
        """A small head movement: enough to trip the IMU's wake-up threshold."""
        self.imu.set_acceleration(0.0, 0.3 * G, 0.95 * G)
        self.imu.set_acceleration(0.0, 0.0, G)

    def _wearer(self) -> None:
        # A head is never still for long: a nod every HEAD_MOVE_S of clock time while worn.
        while self.clock.sleep(HEAD_MOVE_S, self._stop):
            if self.worn:
                self.nod()

    def tilt(self, pitch_deg: float) -> None:
        p = math.radians(pitch_deg)
        self.imu.set_acceleration(0.0, G * math.sin(p), G * math.cos(p))

    def set_battery(self, percent: float) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"battery percent {percent} outside 0..100")
        self.power.tick()
        self.fuel_gauge.set_percent(percent)

    def set_charger(self, on: bool) -> None:
        self.power.tick()  # the time so far at the old charge state
        self.charger = on
        if self._charger_pin is not None:
            # Power-good is active low, held up by the pull-up while there is no charger.
            self._charger_pin.drive_low() if on else self._charger_pin.drive_high()
        self.power.tick()

    def set_temperature(self, celsius: float) -> None:
        """The SoC thermal zone and the IMU's die temperature (the frame warms up too)."""
        if not -40 <= celsius <= 125:
            raise ValueError(f"temperature {celsius} C outside -40..125")
        tmp = self.thermal_path.with_suffix(".tmp")
        tmp.write_text(f"{round(celsius * 1000)}\n")
        tmp.replace(self.thermal_path)
        self.imu.set_temperature(celsius)

    def set_fault(self, device: str, kind: str | None) -> None:
        """Inject a fault in one device (see DEVICES and drivers.sim.i2c.FAULTS); None clears."""
        if kind == "clear":
            kind = None
        if kind is not None and kind not in FAULTS:
            raise ValueError(f"unknown fault '{kind}'; choose one of {', '.join(FAULTS)} or clear")
        if device == "imu":
            self.i2c.set_fault(self.config.imu.address, kind)
        elif device == "fuel_gauge":
            self.i2c.set_fault(self.config.fuel_gauge.address, kind)
        elif device == "camera":
            self.picam.fault = "gone" if kind == "nack" else kind
        elif device == "microphones":
            self.audio_source.fault = "gone" if kind == "nack" else kind
        else:
            raise ValueError(f"unknown device '{device}'; choose one of {', '.join(DEVICES)}")

    def speaker_files(self) -> list[Path]:
        return list_played(self.speaker_dir)

    def close(self) -> None:
        self._stop.set()
        joined(self._wearer_thread, 2.0)
        self.power.close()
        self.gpio.close()

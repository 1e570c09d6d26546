"""Board bring-up: turn a board file into running drivers.

This is the only module that opens /dev (through smbus2, lgpio, PortAudio and
libcamera) and the only one that knows whether the parts are simulated: it picks the
buses and device endpoints by their `kind` in the board file, then builds the same
drivers on top of either.
"""

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

from gpiozero import LED, Button, DigitalInputDevice, DigitalOutputDevice

from .absent import Absent
from .audio import Microphones
from .speaker import Speaker
from .buttons import GestureButton
from .camera import Camera
from .errors import BusError, ConfigError, DeviceError, DeviceMissing, GlassesError
from .i2c import I2CDevice
from .interlock import InterlockedCamera
from .leds import PrivacyLED, StatusLED
from .parts import ROLES, find
from .power import ComponentStates
from .soc import Soc
from .thermal import ThermalZone

SIM_KINDS = {"sim", "mock"}
log = logging.getLogger("glasses.board")

# The endpoints each selftest device needs (Endpoints.missing's keys).
NEEDS = {"imu": ("i2c", "gpio"), "fuel_gauge": ("i2c",), "camera": ("camera", "gpio"),
         "microphones": ("audio",), "speaker": ("audio", "gpio"), "buttons": ("gpio",),
         "leds": ("gpio",), "soc_thermal": ("thermal",)}


@dataclass
class Endpoints:
    """What a board provides below the drivers: buses and device handles."""

    i2c_bus: object
    i2c_name: str
    pin_factory: object
    mic_stream_factory: object
    speaker_stream_factory: object
    picam: object
    encoder_factory: object
    mapped_array: object     # picamera2.MappedArray: how a frame filter reaches a request's frame
    thermal_path: Path
    soc: object
    sim: object = None      # drivers.sim.hardware.SimHardware on the sim board
    bluetooth: object = None    # BluetoothBus: where BlueZ answers; None: no phone link
    closers: list = field(default_factory=list)
    missing: dict = field(default_factory=dict)   # endpoint -> why this machine lacks it


@dataclass(frozen=True)
class BluetoothBus:
    """Where the board's BlueZ answers (firmware/phone): `address` None is the system bus."""

    address: str | None
    adapter: str
    alias: str


def _bluetooth(config, address: str | None = None) -> BluetoothBus | None:
    spec = config.bluetooth
    if spec is None:
        return None
    if spec.bus == "sim" and address is None:
        raise ConfigError(f"{config.path}: 'bluetooth.bus' is \"sim\" but the board's parts are real; "
                          "use \"system\"")
    if address is None and spec.bus != "system":
        address = spec.bus
    return BluetoothBus(address, spec.adapter, spec.alias)


def _open_real(config, data_dir: Path, clock) -> Endpoints:
    """The board's real endpoints; each one this machine lacks is an Absent in its place
    and a line in `missing` (endpoint -> why, and what to do), never a failed start."""
    missing: dict[str, str] = {}

    def lacking(endpoint: str, what: str, e: BaseException, hint: str):
        reason = f"{e}; {hint}" if hint else str(e)
        missing[endpoint] = reason
        log.warning("%s is missing (%s): the firmware runs without it", what, reason)
        return Absent(what, reason)

    closers = []
    try:
        import smbus2
        bus = smbus2.SMBus(config.i2c.bus)
        closers.append(bus.close)
    except (OSError, ImportError) as e:
        bus = lacking("i2c", f"I2C bus {config.i2c.bus}", e, "enable it with dtparam=i2c_arm=on in "
                      "config.txt and add the user to group i2c")
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
        factory = LGPIOFactory(chip=config.gpio.chip)
    except (OSError, ImportError, RuntimeError) as e:
        lacking("gpio", f"GPIO chip {config.gpio.chip}", e, "is /dev/gpiochip"
                f"{config.gpio.chip} there and the user in group gpio?")
        # gpiozero's own pin factory without hardware: buttons never press, and the capture
        # LED's read-back never follows, so the privacy interlock keeps the camera off.
        from gpiozero.pins.mock import MockFactory
        factory = MockFactory()
    try:
        try:
            import sounddevice as sd
        except OSError as e:
            raise BusError(2, f"PortAudio is missing ({e}); install libportaudio2") from e
        device = _find_sound_card(sd, config.audio.card)
        mic = functools.partial(sd.InputStream, device=device)
        speaker = functools.partial(sd.OutputStream, device=device)
    except (OSError, ImportError) as e:
        mic = speaker = lacking("audio", f"sound card {config.audio.card}", e, "")
    try:
        from picamera2 import MappedArray, Picamera2
        encoder_factory = _video_encoder_factory(config)
        picam = Picamera2(0 if config.camera.port == "cam0" else 1)
    except (OSError, ImportError, RuntimeError, IndexError) as e:
        hint = "install python3-picamera2 (apt)" if isinstance(e, ImportError) else \
            f"check dtoverlay={config.camera.overlay} in config.txt and `rpicam-hello --list-cameras`"
        picam = encoder_factory = MappedArray = lacking("camera", f"camera {config.camera.sensor}", e, hint)
    thermal = Path(config.thermal.zone_path)
    if not thermal.exists():
        missing["thermal"] = f"no {thermal}"
    return Endpoints(
        i2c_bus=bus, i2c_name=f"i2c-{config.i2c.bus}", pin_factory=factory,
        mic_stream_factory=mic, speaker_stream_factory=speaker,
        picam=picam, encoder_factory=encoder_factory, mapped_array=MappedArray,
        thermal_path=thermal,
        soc=Soc(governor_paths=sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")),
                rtc_wakealarm="/sys/class/rtc/rtc0/wakealarm"),
        bluetooth=_bluetooth(config), closers=closers, missing=missing,
    )


def _video_encoder_factory(config):
    """picamera2's H.264 encoder the board file names, writing MP4 through PyavOutput.

    picamera2.encoders.H264Encoder is the V4L2 one when the SoC has an H.264 block
    (bcm2835-codec-encode at /dev/video11: Pi 4 / CM4) and LibavH264Encoder (libx264 in
    software) when it has none (Pi 5 / CM5). The board file says which it expects, so a
    board file that asks for a block the SoC lacks is an error here, not a slow surprise.
    """
    cam = config.camera
    try:
        import picamera2.encoders as encoders
        from picamera2.encoders.h264_encoder import H264Encoder as V4L2H264Encoder
        from picamera2.outputs import PyavOutput
    except ImportError as e:
        raise BusError(2, f"picamera2's video support is missing ({e}); install python3-picamera2 "
                       "and python3-av (apt)") from e
    if cam.video_encoder == "hardware":
        if encoders.H264Encoder is not V4L2H264Encoder:
            raise ConfigError(f"{config.path}: 'camera.video_encoder' is \"hardware\" but this SoC "
                              "has no H.264 encoder (no bcm2835-codec-encode at /dev/video11; the "
                              "Pi 5 and CM5 have none); set it to \"software\"")
        encoder_class = V4L2H264Encoder
    else:
        encoder_class = encoders.LibavH264Encoder
    # One keyframe a second, so a player can seek; the rate is what the camera streams.
    make_encoder = functools.partial(encoder_class, framerate=cam.fps, iperiod=cam.fps)
    # The temp file's name ends in .part, so the container is named, not guessed.
    make_output = functools.partial(PyavOutput, format="mp4")
    return functools.partial(_h264_mp4, make_encoder, make_output)


def _h264_mp4(make_encoder, make_output, path: str):
    """A fresh (encoder, output) pair per video, the output bound to that video's temp file."""
    return make_encoder(), make_output(path)


def _find_sound_card(sd, card: str) -> int:
    for index, dev in enumerate(sd.query_devices()):
        if card in dev["name"]:
            return index
    raise BusError(19, f"no sound card named '{card}'; check dtoverlay="
                   "googlevoicehat-soundcard in config.txt and `aplay -l`")


def _open_sim(config, data_dir: Path, clock) -> Endpoints:
    from .sim.camera import SimMappedArray
    from .sim.hardware import SimHardware
    sim = SimHardware(config, data_dir, clock)
    closers, address = [sim.close], None
    if config.bluetooth is not None and config.bluetooth.bus == "sim":
        # The phone link on its own dbus-daemon, BlueZ mocked, the phone acting as Gadgetbridge.
        from .sim.bluetooth import SimBluetooth
        try:
            sim.bluetooth = SimBluetooth(data_dir, config.bluetooth.adapter, config.bluetooth.alias)
        except BaseException:
            sim.close()
            raise
        sim.phone, address = sim.bluetooth.phone, sim.bluetooth.address
        closers.insert(0, sim.bluetooth.close)
        # Its calls and music: oFono, BlueALSA and the phone's player on the same bus.
        from .sim.telephony import SimTelephony
        sim.telephony = SimTelephony(data_dir, address, sim.phone.device_path, sim.phone.name)
        try:
            sim.telephony.start()
        except BaseException:
            for close in closers:
                close()
            raise
        closers.insert(0, sim.telephony.close)
    return Endpoints(
        i2c_bus=sim.i2c, i2c_name=f"sim-i2c-{config.i2c.bus}", pin_factory=sim.gpio.factory,
        mic_stream_factory=sim.mic_stream_factory, speaker_stream_factory=sim.speaker_stream_factory,
        picam=sim.picam, encoder_factory=sim.encoder_factory, mapped_array=SimMappedArray,
        thermal_path=sim.thermal_path,
        soc=Soc(poweroff=lambda: None),  # the sim "halts" by drawing halt watts
        sim=sim, bluetooth=_bluetooth(config, address), closers=closers,
    )


def open_endpoints(config, data_dir: Path, clock) -> Endpoints:
    kinds = {config.i2c.kind, config.gpio.kind, config.audio.kind, config.camera.kind}
    if kinds <= SIM_KINDS:
        return _open_sim(config, data_dir, clock)
    if kinds & SIM_KINDS:
        raise ConfigError(f"{config.path}: mixes simulated and real parts ({', '.join(sorted(kinds))}); "
                          "a board is either all real or all sim")
    return _open_real(config, data_dir, clock)


class FilteredCamera(InterlockedCamera):
    """The interlocked camera, plus the raw camera's video `frame_filter` (face blurring),
    which the capture service sets: it edits frames, it cannot start or light anything."""

    @property
    def frame_filter(self):
        return self._camera.frame_filter

    @frame_filter.setter
    def frame_filter(self, fn) -> None:
        self._camera.frame_filter = fn  # callable(frame) or None; read when a video starts


class Board:
    """The running hardware: drivers for every part, built from a board file.

    `camera` is the privacy interlock: the raw camera and the capture LED are private,
    so nothing above the board can stream without the LED lit and read back.
    """

    def __init__(self, config, data_dir: Path, clock, on_gesture=None):
        self.config = config
        self.clock = clock
        self.data_dir = Path(data_dir)
        self._ep = open_endpoints(config, self.data_dir, clock)
        self.sim = self._ep.sim
        self.bluetooth = self._ep.bluetooth
        self.soc = self._ep.soc
        pins = self._ep.pin_factory
        try:
            self._build(config, pins, on_gesture)
        except BaseException:
            self._close_endpoints()
            raise
        if self.sim is not None:
            self.sim.power.start(self.component_states)

    def component_states(self) -> ComponentStates:
        """What is powered now, for the power model and energy accounting."""
        cam = self.camera
        camera = "recording" if cam.recording else "streaming" if cam.streaming else "off"
        speaker = "playing" if (self.speaker.is_playing or self.speaker.phone_audio) else \
            "idle" if self.speaker.streaming else "off"
        leds = tuple(n for n, lit in (("capture", cam.led_driven),
                                      ("status", self.status_led.lit)) if lit)
        return ComponentStates(soc=self.soc.level, camera=camera,
                               microphones="on" if self.microphones.running else "off",
                               speaker=speaker, imu="low_power" if self.soc.level == "halt" else "on",
                               leds=leds)

    def _i2c_part(self, role: str, pins):
        """The driver of the part the board file names for `role`, with its interrupt line."""
        spec = getattr(self.config, role)
        part = find(role, spec.part, self.config.path)
        line = ROLES[role]
        irq = DigitalInputDevice(getattr(spec, line.irq_pin), pull_up=line.irq_pull_up,
                                 pin_factory=pins)
        self._irq_inputs.append(irq)
        return part.build(I2CDevice(self._ep.i2c_bus, spec.address, role, self._ep.i2c_name),
                          spec, irq)

    def _build(self, config, pins, on_gesture) -> None:
        self._irq_inputs = []
        self.imu = self._i2c_part("imu", pins)
        self.fuel_gauge = self._i2c_part("fuel_gauge", pins)
        self.thermal = ThermalZone(self._ep.thermal_path)
        pin = config.battery.charger_pin
        self.charger_input = None if pin < 0 else \
            DigitalInputDevice(pin, pull_up=True, pin_factory=pins)
        cam = config.camera
        self._camera = Camera(self._ep.picam, self._ep.encoder_factory, still_size=cam.still_size,
                              lores_size=cam.lores_size, video_size=cam.video_size, fps=cam.fps,
                              clock=self.clock, name=cam.port, mapped_array=self._ep.mapped_array)
        audio = config.audio
        self.microphones = Microphones(self._ep.mic_stream_factory, rate_hz=audio.rate_hz,
                                       channels=audio.channels,
                                       block_frames=audio.rate_hz * audio.block_ms // 1000,
                                       clock=self.clock)
        self.speaker = Speaker(self._ep.speaker_stream_factory, rate_hz=audio.rate_hz,
                               channels=audio.channels,
                               amp_enable=DigitalOutputDevice(audio.amp_enable_pin, pin_factory=pins),
                               clock=self.clock)
        self.buttons = {
            name: GestureButton(name, Button(spec.pin, pull_up=spec.active_low, bounce_time=None,
                                             pin_factory=pins),
                                self.clock, on_gesture, spec.long_press_s, spec.double_window_s)
            for name, spec in config.buttons.items()}
        capture = config.leds["capture"]
        self._privacy_led = PrivacyLED(LED(capture.pin, pin_factory=pins),
                                       DigitalInputDevice(capture.readback_pin, pull_up=False,
                                                          pin_factory=pins), self.clock)
        self.camera = FilteredCamera(self._camera, self._privacy_led, name=cam.port)
        self.status_led = StatusLED(LED(config.leds["status"].pin, pin_factory=pins))

    @property
    def missing(self) -> dict[str, str]:
        """Endpoints this machine lacks -> why (empty on a complete board and on the sim)."""
        return dict(self._ep.missing)

    def missing_for(self, device: str) -> str | None:
        """Why `device` cannot work here, or None when everything it needs is present."""
        lacking = [f"{e}: {self._ep.missing[e]}" for e in NEEDS.get(device, ()) if e in self._ep.missing]
        return "; ".join(lacking) or None

    def _unless_missing(self, device: str, probe):
        def checked():
            why = self.missing_for(device)
            if why:
                raise DeviceMissing(19, f"missing ({why})")
            return probe()
        return checked

    # What selftest probes, in order: name -> (probe, required).
    def probes(self) -> dict[str, tuple]:
        return {name: (self._unless_missing(name, fn), required)
                for name, (fn, required) in self._probes().items()}

    def _probes(self) -> dict[str, tuple]:
        c = self.config
        return {
            "imu": (self.imu.probe, c.imu.required),
            "fuel_gauge": (self.fuel_gauge.probe, c.fuel_gauge.required),
            "camera": (self.camera.probe, c.camera.required),
            "microphones": (self.microphones.probe, c.audio.required),
            "speaker": (self.speaker.probe, c.audio.required),
            "buttons": (self._probe_buttons, True),
            "leds": (self._probe_leds, True),
            "soc_thermal": (self.thermal.probe, False),
        }

    def _probe_buttons(self) -> str:
        return ", ".join(f"{n} {'pressed' if b.is_pressed else 'released'}"
                         for n, b in self.buttons.items())

    def _probe_leds(self) -> str:
        return f"capture: {self.camera.led_probe()}; status: {self.status_led.probe()}"

    def close(self) -> None:
        """Stop every device; safe to call twice. Errors are collected, not swallowed."""
        if self.sim is not None:
            self.sim.power.close()  # it reads device states: stop it before they close
        errors = []
        # The interlocked camera closes the raw camera and the capture LED it owns.
        parts = [getattr(self, n, None) for n in ("camera", "microphones", "speaker", "status_led")]
        parts += list(getattr(self, "buttons", {}).values())
        parts += getattr(self, "_irq_inputs", []) + [getattr(self, "charger_input", None)]
        for part in parts:
            if part is None:
                continue
            try:
                part.close()
            except (GlassesError, RuntimeError, OSError) as e:
                errors.append(f"{type(part).__name__}: {e}")
        self.buttons, self._irq_inputs = {}, []
        self.camera = self.microphones = self.speaker = self.status_led = None
        self._camera = self._privacy_led = None
        self._close_endpoints()
        if errors:
            raise DeviceError("closing the board: " + "; ".join(errors))

    def _close_endpoints(self) -> None:
        closers, self._ep.closers = self._ep.closers, []
        for close in closers:
            close()

"""Board files as frozen dataclasses, validated on load.

The dataclasses below are the schema: a TOML key the dataclass does not name, a
missing field without a default, or a value of the wrong type is refused with a
ConfigError that names the file and the dotted key.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from glasses_firmware.drivers import parts
from glasses_firmware.drivers.errors import ConfigError

Size = tuple[int, int]


@dataclass(frozen=True)
class BoardInfo:
    name: str
    module: str                      # cm5 | cm4 | sim
    description: str = ""
    data_dir: str = "/var/lib/glasses"


@dataclass(frozen=True)
class ImageSpec:
    url: str
    sha256_url: str                  # the release's published checksum file
    sha256: str                      # pinned digest; empty until a release is pinned
    python_abi: str                  # e.g. cp311: the wheels installed on the image
    platform: str                    # e.g. manylinux_2_36_aarch64
    max_device_gb: int = 256         # refuse to write to anything larger


@dataclass(frozen=True)
class BootSpec:
    config_txt: tuple[str, ...] = ()   # lines added to config.txt besides the generated ones
    cmdline_remove: tuple[str, ...] = ()
    cmdline_add: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsoleSpec:
    tty: str
    baud: int = 115200
    pin_hash: str = ""               # "scrypt$salt$hash"; empty: no PIN


@dataclass(frozen=True)
class I2CSpec:
    kind: str                        # smbus2 | sim
    bus: int
    baudrate_hz: int = 400_000


@dataclass(frozen=True)
class GPIOSpec:
    kind: str                        # lgpio | mock
    chip: int = 0


@dataclass(frozen=True)
class ImuSpec:
    part: str                        # a drivers.parts.PARTS name: lsm6dsox
    address: int
    int1_pin: int
    accel_range_g: int = 4
    accel_odr_hz: float = 26
    gyro_range_dps: int = 250
    gyro_odr_hz: float = 26
    wake_threshold_g: float = 0.125
    required: bool = True


@dataclass(frozen=True)
class FuelGaugeSpec:
    part: str                        # a drivers.parts.PARTS name: max17048 | max17049
    address: int
    alert_pin: int
    alert_percent: int = 10
    required: bool = True


@dataclass(frozen=True)
class ButtonSpec:
    pin: int
    active_low: bool = True
    long_press_s: float = 0.8
    double_window_s: float = 0.35


@dataclass(frozen=True)
class LedSpec:
    pin: int
    readback_pin: int = -1           # -1: no read-back line


@dataclass(frozen=True)
class AudioSpec:
    kind: str                        # sounddevice | sim
    card: str
    rate_hz: int
    channels: int
    sample_format: str
    amp_enable_pin: int
    overlay: str = ""
    block_ms: int = 20
    required: bool = True


@dataclass(frozen=True)
class CameraSpec:
    kind: str                        # picamera2 | sim
    sensor: str
    port: str
    still_size: Size
    lores_size: Size
    video_size: Size
    fps: int = 30
    overlay: str = ""
    required: bool = True
    video_codec: str = "h264"        # videos are H.264 in MP4, what phones, browsers and editors play
    video_encoder: str = "software"  # hardware: the SoC's H.264 block (CM4); software: libx264 (CM5 has none)
    # Faces blurred in every photo and video frame before anything is stored (docs/privacy.md).
    # Off only for a board whose captures never leave a lab; on, a missing face model refuses capture.
    blur_faces: bool = True


VIDEO_CODECS = ("h264",)
VIDEO_ENCODERS = ("hardware", "software")


@dataclass(frozen=True)
class PowerEntry:
    """Watts one component draws in each of its states, and where the numbers come from."""

    watts: dict[str, float]
    source: str


@dataclass(frozen=True)
class BatterySpec:
    capacity_mah: int
    nominal_v: float
    low_percent: float = 15
    critical_percent: float = 5
    charger_pin: int = -1            # charger IC power-good output (active low); -1: none
    video_min_percent: float = 20    # no video below this (unless charging)


@dataclass(frozen=True)
class ThermalSpec:
    hot_c: float = 70
    critical_c: float = 80
    video_margin_c: float = 5        # no video within this much of hot_c
    zone_path: str = "/sys/class/thermal/thermal_zone0/temp"


@dataclass(frozen=True)
class ServiceSpec:
    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class StorageSpec:
    """Where the device key that seals recordings and notes comes from (drivers/devicekey.py)."""

    key_source: str = "file"         # file | otp (rpi-otp-private-key; the file if unset)
    key_file: str = ""               # "": beside the data dir, <parent>/.glasses-keys/<name>.key


KEY_SOURCES = ("file", "otp")


@dataclass(frozen=True)
class InferenceSpec:
    threads: int = 2


@dataclass(frozen=True)
class BluetoothSpec:
    """The phone link (docs/phone.md): BlueZ on a D-Bus."""

    bus: str                         # system | sim (the sim's private bus) | a D-Bus address (unix:...)
    adapter: str = "hci0"
    alias: str = "Bangle.js Glasses"  # what phones see; Gadgetbridge wants the "Bangle.js" prefix


@dataclass(frozen=True)
class SimSpec:
    """Initial physical state of the simulated board."""

    scene: str = "pattern"
    battery_percent: float = 80
    worn: bool = True
    temperature_c: float = 32


@dataclass(frozen=True)
class Board:
    board: BoardInfo
    console: ConsoleSpec
    i2c: I2CSpec
    gpio: GPIOSpec
    imu: ImuSpec
    fuel_gauge: FuelGaugeSpec
    buttons: dict[str, ButtonSpec]
    leds: dict[str, LedSpec]
    audio: AudioSpec
    camera: CameraSpec
    power: dict[str, PowerEntry]
    battery: BatterySpec
    thermal: ThermalSpec = field(default_factory=ThermalSpec)
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    image: ImageSpec | None = None
    boot: BootSpec = field(default_factory=BootSpec)
    service: ServiceSpec | None = None
    eeprom: dict[str, int] = field(default_factory=dict)
    sim: SimSpec | None = None
    bluetooth: BluetoothSpec | None = None    # None: no phone link
    path: str = ""                   # set by the loader, not by the file

    @property
    def name(self) -> str:
        return self.board.name


REQUIRED_BUTTONS = ("capture", "action", "power")
REQUIRED_LEDS = ("capture", "status")
REQUIRED_POWER = ("soc", "camera", "microphones", "speaker", "imu", "leds")


def from_toml(data: dict, file: str) -> Board:
    if "path" in data:
        raise ConfigError(f"{file}: unknown key 'path'")
    board = dataclasses.replace(_build(Board, data, "", file), path=file)
    _check(board, file)
    return board


def _check(board: Board, file: str) -> None:
    """Cross-field rules the types cannot say."""
    for group, names in (("buttons", REQUIRED_BUTTONS), ("leds", REQUIRED_LEDS),
                         ("power", REQUIRED_POWER)):
        for name in names:
            if name not in getattr(board, group):
                raise ConfigError(f"{file}: missing part '{group}.{name}'")
    for role in parts.ROLES:
        parts.find(role, getattr(board, role).part, file)
    if board.leds["capture"].readback_pin < 0:
        raise ConfigError(f"{file}: 'leds.capture.readback_pin' is required: capture is only "
                          "allowed while the privacy LED reads back as on")
    for key, size in (("still_size", board.camera.still_size), ("lores_size", board.camera.lores_size),
                      ("video_size", board.camera.video_size)):
        if min(size) <= 0:
            raise ConfigError(f"{file}: 'camera.{key}' must be positive, got {list(size)}")
    for key, value, allowed in (("video_codec", board.camera.video_codec, VIDEO_CODECS),
                                ("video_encoder", board.camera.video_encoder, VIDEO_ENCODERS)):
        if value not in allowed:
            raise ConfigError(f"{file}: 'camera.{key}' must be one of "
                              f"{', '.join(map(repr, allowed))}, got {value!r}")
    bt = board.bluetooth
    if bt is not None:
        if bt.bus not in ("system", "sim") and not bt.bus.startswith(("unix:", "tcp:")):
            raise ConfigError(f"{file}: 'bluetooth.bus' must be \"system\", \"sim\" or a D-Bus "
                              f"address like \"unix:path=/run/dbus/system_bus_socket\", got {bt.bus!r}")
        if not bt.adapter.startswith("hci") or not bt.adapter[3:].isdigit():
            raise ConfigError(f"{file}: 'bluetooth.adapter' must be like \"hci0\", got {bt.adapter!r}")
        if not bt.alias.startswith("Bangle.js") or len(bt.alias.encode()) > 29:
            raise ConfigError(f"{file}: 'bluetooth.alias' must start with \"Bangle.js\" (how Gadgetbridge "
                              f"recognises the device) and fit an advertisement (29 bytes), got {bt.alias!r}")
    if board.storage.key_source not in KEY_SOURCES:
        raise ConfigError(f"{file}: 'storage.key_source' must be one of "
                          f"{', '.join(map(repr, KEY_SOURCES))}, got {board.storage.key_source!r}")
    if board.storage.key_file and not board.storage.key_file.startswith("/"):
        raise ConfigError(f"{file}: 'storage.key_file' must be an absolute path, "
                          f"got {board.storage.key_file!r}")
    if board.audio.channels not in (1, 2):
        raise ConfigError(f"{file}: 'audio.channels' must be 1 or 2, got {board.audio.channels}")


def _build(cls, data, where: str, file: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: '{where}' must be a table, got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"{file}: unknown key '{_join(where, key)}'; "
                              f"expected one of: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{file}: missing '{key}'")
            continue
        kwargs[name] = _convert(hints[name], data[name], key, file)
    return cls(**kwargs)


def _convert(tp, value, key: str, file: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key, file)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, file)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: '{key}' must be a table, got {_kind(value)}")
        return {k: _convert(args[1], v, _join(key, k), file) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{file}: '{key}' must be a list, got {_kind(value)}")
        if args[-1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]", file) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{file}: '{key}' must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{key}[{i}]", file) for i, (a, v) in enumerate(zip(args, value)))
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float
          else isinstance(value, int) and not isinstance(value, bool) if tp is int
          else isinstance(value, tp))
    if not ok:
        raise ConfigError(f"{file}: '{key}' must be {tp.__name__}, got {_kind(value)} {value!r}")
    return float(value) if tp is float else value


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(value) -> str:
    return {dict: "table", list: "list", str: "string", bool: "boolean",
            int: "integer", float: "float"}.get(type(value), type(value).__name__)

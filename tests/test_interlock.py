"""The privacy interlock on the sim parts: no frame, photo or video unless the LED reads back lit."""

import io
import threading
import time

import pytest
from gpiozero import LED, DigitalInputDevice
from PIL import Image

from glasses_firmware import boards
from glasses_firmware.drivers.bringup import Board
from glasses_firmware.drivers.camera import Camera
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import DeviceError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.interlock import InterlockedCamera, InterlockError
from glasses_firmware.drivers.leds import PrivacyLED
from glasses_firmware.drivers.sim.camera import SimPicamera2, sim_encoder_factory
from glasses_firmware.drivers.sim.gpio import SimGPIO
from glasses_firmware.drivers.sim.scene import Scene
from tests.test_camera_video import assert_playable_mp4, ffmpeg_children

SIM = boards.load("sim")
SMALL = {"still_size": (640, 480), "lores_size": (160, 120), "video_size": (320, 240)}


class Rig:
    """The interlocked camera on the sim camera and the sim carrier's wired read-back."""

    def __init__(self):
        self.clock = SimClock(realtime=True)
        self.gpio = SimGPIO()
        pins = SIM.leds["capture"]
        self.gpio.wire_readback(pins.pin, pins.readback_pin)
        self.led = PrivacyLED(LED(pins.pin, pin_factory=self.gpio.factory),
                              DigitalInputDevice(pins.readback_pin, pull_up=False,
                                                 pin_factory=self.gpio.factory), self.clock)
        self.picam = SimPicamera2(Scene.parse("pattern"), self.clock)
        camera = Camera(self.picam, sim_encoder_factory, clock=self.clock, capture_timeout_s=0.5,
                        **SMALL)
        self.cam = InterlockedCamera(camera, self.led, busy_timeout_s=5.0)
        self.trips = []
        self.tripped = threading.Event()
        self.cam.on_tripped = self._on_tripped
        # What the LED said at the moment the sensor was started, each time.
        self.led_at_sensor_start = []
        start = self.picam.start
        self.picam.start = lambda: (self.led_at_sensor_start.append(self.led.confirmed()), start())

    def _on_tripped(self, reason):
        self.trips.append((reason, threading.current_thread().name))
        self.tripped.set()

    def sensor_running(self) -> bool:
        return self.picam._started

    def led_pin_high(self) -> bool:
        """The LED's output pin itself, readable after the LED device is closed."""
        return bool(self.gpio.pin(SIM.leds["capture"].pin).state)

    def close(self):
        self.cam.close()
        assert not self.led_pin_high()
        self.gpio.close()


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def assert_dark(rig):
    assert not rig.cam.led_driven and not rig.cam.led_confirmed()
    assert not rig.cam.streaming and not rig.sensor_running()


def test_healthy_cycle_gives_frames_with_the_led_confirmed(rig, tmp_path):
    cam = rig.cam
    assert_dark(rig)
    cam.start()
    assert cam.streaming and cam.state == "streaming" and cam.led_confirmed()
    with Image.open(io.BytesIO(cam.capture_jpeg())) as im:
        assert im.format == "JPEG" and im.size == (640, 480)
    assert cam.capture_lores().shape == (120, 160)
    photo = cam.save_photo(tmp_path / "a.jpg")
    assert photo.path.exists() and photo.size == (640, 480)
    assert cam.led_confirmed()
    cam.stop()
    assert_dark(rig)
    cam.stop()  # idempotent
    assert rig.led_at_sensor_start == [True]
    assert rig.trips == []  # our own stop turning the LED off is not a trip


def test_a_capture_from_stopped_lights_the_led_before_the_sensor(rig):
    assert rig.cam.capture_lores().shape == (120, 160)
    assert rig.led_at_sensor_start == [True]
    assert rig.cam.streaming and rig.cam.led_confirmed()


def broken_ops(cam, tmp_path):
    return {
        "start": cam.start,
        "capture_jpeg": cam.capture_jpeg,
        "capture_lores": cam.capture_lores,
        "save_photo": lambda: cam.save_photo(tmp_path / "p.jpg"),
        "start_video": lambda: cam.start_video(tmp_path / "v.mp4", max_duration_s=5),
        "probe": cam.probe,
    }


@pytest.mark.parametrize("stuck_high", [False, True], ids=["stuck-low", "stuck-high"])
@pytest.mark.parametrize("op", ["start", "capture_jpeg", "capture_lores", "save_photo",
                                "start_video", "probe"])
def test_broken_readback_refuses_everything(rig, tmp_path, op, stuck_high):
    rig.gpio.break_readback(stuck_high=stuck_high)
    with pytest.raises(InterlockError) as info:
        broken_ops(rig.cam, tmp_path)[op]()
    assert isinstance(info.value, DeviceError)
    message = str(info.value)
    assert "capture LED" in message and "so the camera gives no frames" in message
    assert "\n" not in message
    assert rig.led_at_sensor_start == []  # the sensor never started
    assert not rig.cam.led_driven and not rig.cam.streaming and not rig.cam.recording
    assert list(tmp_path.iterdir()) == []  # no photo, no video, no temp file
    assert rig.trips == []  # a refusal, not a trip: nothing was streaming


def test_repaired_readback_works_again(rig):
    rig.gpio.break_readback()
    with pytest.raises(InterlockError):
        rig.cam.capture_lores()
    rig.gpio.repair_readback()
    assert rig.cam.capture_lores().shape == (120, 160)
    assert rig.cam.led_confirmed()


def test_readback_lost_mid_stream_stops_the_stream_at_once(rig):
    rig.cam.start()
    t0 = time.monotonic()
    rig.gpio.break_readback()
    assert rig.tripped.wait(2.0)
    took_s = time.monotonic() - t0
    assert took_s < 1.0
    assert_dark(rig)
    [(reason, thread)] = rig.trips
    assert "read-back lost while streaming" in reason
    assert thread != threading.main_thread().name  # not in the pin's callback
    with pytest.raises(InterlockError):
        rig.cam.capture_lores()
    assert len(rig.trips) == 1


def test_readback_lost_mid_video_stops_it_and_keeps_what_was_lit(rig, tmp_path):
    stopped = []
    rig.cam.on_video_stopped = lambda path, reason: stopped.append((path, reason))
    path = tmp_path / "v.mp4"
    rig.cam.start_video(path, max_duration_s=60)
    assert rig.cam.recording
    time.sleep(0.3)
    rig.gpio.break_readback()
    assert rig.tripped.wait(2.0)
    assert not rig.cam.recording and not rig.cam.streaming and not rig.cam.led_driven
    assert stopped == [(path, "camera stopped")]
    # The trip stopped the encoder cleanly: a playable MP4 of the frames taken while lit.
    info = assert_playable_mp4(path, (320, 240), frames=rig.picam.frames_encoded)
    assert info["frames"] >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert ffmpeg_children() == []
    assert rig.cam.stop_video() == path


def break_during(rig, method):
    """Make the sim camera's `method` drop the read-back while a frame is being read."""
    real = getattr(rig.picam, method)

    def read(*args, **kwargs):
        result = real(*args, **kwargs)
        rig.gpio.break_readback()
        return result

    setattr(rig.picam, method, read)


@pytest.mark.parametrize("op, method", [("capture_lores", "capture_array"),
                                        ("capture_jpeg", "capture_file"),
                                        ("save_photo", "capture_file"),
                                        ("probe", "capture_array")])
def test_frame_read_while_the_readback_dropped_is_discarded(rig, tmp_path, op, method):
    rig.cam.start()
    break_during(rig, method)
    with pytest.raises(InterlockError, match="read-back was lost; camera stopped and the frame was discarded"):
        broken_ops(rig.cam, tmp_path)[op]()
    assert_dark(rig)
    assert list(tmp_path.iterdir()) == []
    rig.cam.close()  # joins the edge's trip thread, which found the camera already stopped
    assert len(rig.trips) == 1 and "during" in rig.trips[0][0]


def test_probe_lights_the_led_and_restores_the_state(rig):
    detail = rig.cam.probe()
    assert detail.startswith("imx708 4608x2592, lores 160x120, mean luma ")
    assert detail.endswith("; privacy LED lit and read back during the frame")
    assert rig.led_at_sensor_start == [True]
    assert_dark(rig)  # it was stopped, so it is stopped again
    rig.cam.start()
    rig.cam.probe()
    assert rig.cam.streaming and rig.cam.led_confirmed()


def test_led_probe_toggles_only_while_not_streaming(rig):
    assert "follows" in rig.cam.led_probe()
    assert not rig.cam.led_driven
    rig.cam.start()
    assert rig.cam.led_probe() == "lit and read back (camera streaming)"
    assert rig.cam.streaming and rig.cam.led_confirmed() and rig.trips == []
    rig.gpio.break_readback(stuck_high=True)
    rig.cam.stop()
    with pytest.raises(DeviceError, match="stays high"):
        rig.cam.led_probe()


def test_a_camera_that_does_not_start_turns_the_led_off_again(rig):
    rig.picam.fault = "gone"
    with pytest.raises(GlassesError, match="cam0"):
        rig.cam.start()
    assert rig.led_at_sensor_start == [] and not rig.cam.led_driven
    rig.picam.fault = None
    rig.cam.start()
    assert rig.cam.led_confirmed()


@pytest.mark.parametrize("fault", ["gone", "timeout"])
def test_a_camera_failing_mid_stream_turns_the_led_off(rig, fault):
    rig.cam.start()
    rig.picam.fault = fault
    with pytest.raises(GlassesError) as info:
        rig.cam.capture_lores()
    if fault == "timeout":
        assert isinstance(info.value, DeviceTimeout)
    assert not rig.cam.led_driven and not rig.cam.streaming
    rig.picam.fault = None
    assert rig.cam.capture_lores().shape == (120, 160)
    assert rig.cam.led_confirmed() and rig.trips == []


def test_close_is_idempotent_and_leaves_the_led_off(rig, tmp_path):
    rig.cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    rig.cam.close()
    rig.cam.close()
    rig.cam.stop()  # nothing left to stop
    assert not rig.sensor_running() and rig.trips == []
    assert not rig.led_pin_high() and ffmpeg_children() == []
    with pytest.raises(GlassesError, match="closed"):
        rig.cam.capture_lores()


@pytest.fixture
def board(tmp_path):
    b = Board(SIM, tmp_path, SimClock(realtime=True))
    yield b
    b.close()
    b.close()


def test_the_board_exposes_only_the_interlocked_camera(board):
    assert isinstance(board.camera, InterlockedCamera)
    assert not hasattr(board, "capture_led")
    public = {name for name in vars(board) if not name.startswith("_")}
    assert not any(isinstance(getattr(board, n), (Camera, PrivacyLED)) for n in public)
    board.camera.start()
    assert "capture" in board.component_states().leds
    board.camera.stop()
    assert "capture" not in board.component_states().leds


def test_selftest_rows_say_the_led_was_lit(board):
    probes = board.probes()
    assert list(probes) == ["imu", "fuel_gauge", "camera", "microphones", "speaker", "buttons",
                            "leds", "soc_thermal"]
    camera = probes["camera"][0]()
    assert camera.startswith("imx708 4608x2592, lores 640x360, mean luma ")
    assert camera.endswith("; privacy LED lit and read back during the frame")
    assert probes["leds"][0]() == ("capture: pin GPIO12, read-back pin GPIO13 follows; "
                                   "status: pin GPIO22, off")
    board.camera.start()
    assert probes["leds"][0]().startswith("capture: lit and read back (camera streaming); ")
    board.camera.stop()
    board.sim.gpio.break_readback()
    with pytest.raises(InterlockError, match="so the camera gives no frames"):
        probes["camera"][0]()
    assert not board.camera.led_driven

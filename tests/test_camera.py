"""Camera driver against the sim camera: scenes, lores frames, stills, and the fault matrix.

Videos (H.264 in MP4) and the encoder a board gets are in tests/test_camera_video.py.
"""

import ast
import io
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import glasses_firmware.drivers.camera as camera_module
import glasses_firmware.drivers.frames as frames_module
import glasses_firmware.drivers.media as media_module
from glasses_firmware.drivers.camera import TRANSITIONS, Camera
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import ConfigError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.frames import looks_like_noise
from glasses_firmware.drivers.sim.camera import SimPicamera2, sim_encoder_factory
from glasses_firmware.drivers.sim.scene import Scene

SMALL = {"still_size": (640, 480), "lores_size": (160, 120), "video_size": (320, 240)}


def make_camera(scene="pattern", **kwargs):
    clock = SimClock(realtime=True)
    picam = SimPicamera2(Scene.parse(scene), clock)
    options = {**SMALL, "clock": clock, "capture_timeout_s": 0.5, **kwargs}
    return Camera(picam, sim_encoder_factory, **options), picam


@pytest.fixture
def camera():
    cam, picam = make_camera()
    yield cam, picam
    cam.close()


def luma_of(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


@pytest.mark.parametrize("module", [camera_module, frames_module, media_module])
def test_driver_never_imports_picamera2(module):
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith("picamera2") for name in imported)


def test_drivers_never_import_firmware():
    # The layering docs/architecture.md states; why the camera's move is its own.
    drivers = Path(camera_module.__file__).parent
    for path in drivers.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not any(name.startswith("glasses_firmware.firmware") for name in imported), path


def test_the_state_table():
    states = {src for src, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == {"stopped", "streaming", "recording", "failed", "closed"}
    assert not [row for row in TRANSITIONS if row[0] == "closed"]   # closed is the end
    for state in states - {"closed"}:
        assert TRANSITIONS[(state, "close")] == "closed"
        assert TRANSITIONS[(state, "fail")] == "failed"


def test_every_state_change_is_a_declared_move(camera, tmp_path, caplog):
    cam, picam = camera
    caplog.set_level(logging.INFO, logger=camera_module.log.name)
    cam.start()
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    cam.stop_video()
    picam.fault = "gone"
    for _ in range(2):       # failing again while failed stays failed
        with pytest.raises(GlassesError):
            cam.capture_lores()
    picam.fault = None
    cam.start()
    cam.stop()
    cam.close()
    moves = [re.fullmatch(r"cam0: (\w+) -> (\w+) on (\w+) \(.*\)", r.getMessage()).groups()
             for r in caplog.records if " -> " in r.getMessage()]
    assert moves == [("stopped", "streaming", "start"), ("streaming", "recording", "start_video"),
                     ("recording", "streaming", "stop_video"), ("streaming", "failed", "fail"),
                     ("failed", "streaming", "start"), ("streaming", "stopped", "stop"),
                     ("stopped", "closed", "close")]
    assert all(TRANSITIONS[(old, event)] == new for old, new, event in moves)


def test_a_video_that_could_not_be_saved_says_where_it_is_and_does_not_block_the_next(camera, tmp_path):
    # A disk error at the rename (here the final name is taken by a directory): a clear
    # error naming the file and where the finished video still is; the camera fails, so
    # the next call restarts it, and the next video is saved.
    cam, _ = camera
    (tmp_path / "v.mp4").mkdir()
    (tmp_path / "v.mp4" / "in-the-way").write_text("")
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    with pytest.raises(GlassesError, match="could not be saved as .*v.mp4.*until the next start") as e:
        cam.stop_video()
    assert cam.state == "failed"
    parts = [p for p in tmp_path.iterdir() if p.name.startswith(".v.mp4") or ".part" in p.name]
    assert parts and parts[0].stat().st_size > 0 and str(parts[0]) in str(e.value)
    cam.start_video(tmp_path / "w.mp4", max_duration_s=60)
    time.sleep(0.3)
    assert cam.stop_video() == tmp_path / "w.mp4" and cam.state == "streaming"


def test_pattern_is_deterministic_and_moves():
    scene = Scene.parse("pattern")
    a = scene.render((160, 120), 0.0, 7)
    assert np.array_equal(a, Scene("pattern").render((160, 120), 5.0, 7))
    assert not np.array_equal(a, scene.render((160, 120), 0.0, 8))


def test_consecutive_lores_frames_differ(camera):
    cam, _ = camera
    first, second = cam.capture_lores(), cam.capture_lores()
    assert first.shape == (120, 160) and first.dtype == np.uint8
    assert not np.array_equal(first, second)


def test_image_scene_gives_its_luma(tmp_path):
    left, right = (200, 100, 50), (20, 40, 230)
    img = np.zeros((30, 40, 3), np.uint8)
    img[:, :20], img[:, 20:] = left, right
    Image.fromarray(img).save(tmp_path / "scene.png")
    cam, _ = make_camera(tmp_path / "scene.png")
    with cam:
        y = cam.capture_lores().astype(float)
    assert abs(y[:, :70].mean() - luma_of(left)) < 1.5
    assert abs(y[:, 90:].mean() - luma_of(right)) < 1.5


def test_scene_switches_at_run_time(camera, tmp_path):
    cam, picam = camera
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "white.jpg")
    picam.scene.set(tmp_path / "white.jpg")
    assert cam.capture_lores().min() >= 250
    with pytest.raises(ConfigError, match="nope.png"):
        picam.scene.set(tmp_path / "nope.png")
    assert picam.scene.spec == str(tmp_path / "white.jpg")  # a bad spec keeps the old scene


def test_folder_scene_cycles_once_per_second(tmp_path):
    for i, grey in enumerate((30, 220)):
        Image.new("RGB", (16, 16), (grey, grey, grey)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    scene = Scene.parse(tmp_path)
    assert scene.render((8, 8), 0.5, 0).mean() == 30
    assert scene.render((8, 8), 1.5, 30).mean() == 220
    assert scene.render((8, 8), 2.2, 60).mean() == 30


@pytest.mark.parametrize("make_bad", [
    lambda p: p / "missing.png",
    lambda p: (p / "broken.png").write_bytes(b"not a png") and p / "broken.png",
    lambda p: (p / "empty").mkdir() or p / "empty",
])
def test_bad_scene_path_is_a_clear_error(tmp_path, make_bad):
    path = make_bad(tmp_path)
    with pytest.raises(ConfigError, match=path.name):
        Scene.parse(path)


def test_capture_jpeg_is_a_still_of_the_still_size(camera):
    cam, _ = camera
    data = cam.capture_jpeg()
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.size == (640, 480)


def test_save_photo_is_atomic_and_timestamped(camera, tmp_path):
    cam, _ = camera
    photo = cam.save_photo(tmp_path / "photos" / "a.jpg")
    assert photo.path == tmp_path / "photos" / "a.jpg" and photo.size == (640, 480)
    assert photo.sensor_timestamp_ns > 0 and photo.wall_s > 0
    with Image.open(photo.path) as im:
        im.load()  # the whole file is there
    assert [p.name for p in photo.path.parent.iterdir()] == ["a.jpg"]


def test_full_resolution_still(tmp_path):
    cam, _ = make_camera(still_size=(4608, 2592), lores_size=(640, 360),
                         video_size=(1920, 1080), capture_timeout_s=2.0)
    with cam:
        cam.start()
        t0 = time.monotonic()
        photo = cam.save_photo(tmp_path / "full.jpg")
        took_s = time.monotonic() - t0
        print(f"\nsim still at 4608x2592 took {took_s * 1000:.0f} ms")
        assert "imx708 4608x2592, lores 640x360" in cam.probe()
    with Image.open(photo.path) as im:
        assert im.size == (4608, 2592)


def test_stop_and_close_are_idempotent(camera):
    cam, _ = camera
    cam.start()
    cam.stop()
    cam.stop()
    assert not cam.streaming
    cam.close()
    cam.close()
    with pytest.raises(GlassesError, match="closed"):
        cam.capture_lores()


def test_sim_raises_on_misuse_like_picamera2():
    picam = SimPicamera2(Scene(), SimClock())
    with pytest.raises(RuntimeError):
        picam.start()  # not configured
    picam.configure(picam.create_still_configuration(main={"size": (64, 48)}))
    with pytest.raises(RuntimeError):
        picam.capture_array("main")  # not started
    picam.start()
    with pytest.raises(RuntimeError):
        picam.configure(picam.create_still_configuration())  # still running
    with pytest.raises(ValueError):
        picam.create_still_configuration(main={"size": (64, 48), "fromat": "RGB888"})
    picam.close()


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="lores"):
        make_camera(lores_size=(800, 600))
    with pytest.raises(ConfigError, match="even"):
        make_camera(still_size=(641, 480))


@pytest.mark.parametrize("fault", ["gone", "timeout", "garbage"])
def test_fault_matrix(camera, fault):
    cam, picam = camera
    cam.start()
    picam.fault = fault
    ops = [cam.capture_lores, cam.probe] + ([cam.capture_jpeg] if fault != "garbage" else [])
    for op in ops:
        t0 = time.monotonic()
        with pytest.raises(GlassesError, match="cam0") as err:
            op()
        assert time.monotonic() - t0 < 1.5  # the deadline fired: no hang
        assert "\n" not in str(err.value)
        if fault == "timeout":
            assert isinstance(err.value, DeviceTimeout)
    assert cam.state == "failed"
    picam.fault = None
    assert cam.capture_lores().shape == (120, 160)
    assert cam.probe().startswith("imx708")
    assert cam.state == "streaming"


def test_noise_detector_accepts_scenes_and_rejects_noise():
    scene = Scene("pattern").render((160, 120), 0, 3)
    assert not looks_like_noise(scene[..., 1])
    assert not looks_like_noise(np.zeros((120, 160), np.uint8))
    rng = np.random.default_rng(1)
    assert looks_like_noise(rng.integers(0, 256, (120, 160), dtype=np.uint8))


def test_a_still_is_written_only_when_saved(camera, tmp_path):
    cam, _ = camera
    still = cam.capture_still()
    assert still.jpeg.startswith(b"\xff\xd8") and still.size == (640, 480)
    assert list(tmp_path.iterdir()) == []  # a caller (the interlock) may still discard it
    photo = still.save(tmp_path / "s.jpg")
    assert photo.path.read_bytes() == still.jpeg
    assert (photo.size, photo.sensor_timestamp_ns, photo.wall_s) == \
        (still.size, still.sensor_timestamp_ns, still.wall_s)


"""Camera driver against the sim camera: stills, lores, video (H.264 in MP4), and the fault matrix."""

import ast
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import glasses_firmware.drivers.camera as camera_module
from glasses_firmware.drivers.camera import Camera, looks_like_noise
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.errors import ConfigError, DeviceError, DeviceTimeout, GlassesError, Unsupported
from glasses_firmware.drivers.mp4 import mp4_media_bytes
from glasses_firmware.drivers.sim.camera import Scene, SimPicamera2, sim_encoder_factory

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


def probe_video(path) -> dict:
    """What ffprobe finds after decoding every frame: container, codec, size, pixel format, frames."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
         "-show_entries", "format=format_name:stream=codec_name,width,height,pix_fmt,nb_read_frames",
         "-of", "json", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"ffprobe cannot read {path}: {out.stderr.strip()}"
    info = json.loads(out.stdout)
    [stream] = info["streams"]
    return {"format": info["format"]["format_name"], "codec": stream["codec_name"],
            "size": (stream["width"], stream["height"]), "pix_fmt": stream["pix_fmt"],
            "frames": int(stream["nb_read_frames"])}


def assert_playable_mp4(path, size, frames=None) -> dict:
    """`path` is a whole MP4 (index first: +faststart) holding H.264 video of `size`, every frame decodable."""
    assert mp4_media_bytes(path)
    assert top_level_boxes(path).index(b"moov") < top_level_boxes(path).index(b"mdat")
    info = probe_video(path)
    assert "mp4" in info["format"].split(",")
    assert (info["codec"], info["size"], info["pix_fmt"]) == ("h264", size, "yuv420p")
    if frames is not None:
        assert info["frames"] == frames
    return info


def top_level_boxes(path) -> list[bytes]:
    data, kinds, pos = Path(path).read_bytes(), [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kinds.append(data[pos + 4:pos + 8])
        pos += length if length >= 8 else len(data)
    return kinds


def ffmpeg_children(name: str = "ffmpeg") -> list[int]:
    """PIDs of `name` processes whose parent is this test process (zombies included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if stat[stat.index("(") + 1:stat.rindex(")")] == name and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def test_driver_never_imports_picamera2():
    tree = ast.parse(Path(camera_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith("picamera2") for name in imported)


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


def test_video_stops_by_itself_at_max_duration(camera, tmp_path):
    cam, picam = camera
    stopped = []
    cam.on_video_stopped = lambda path, reason: stopped.append((path, reason))
    path = tmp_path / "videos" / "v.mp4"
    t0 = time.monotonic()
    cam.start_video(path, max_duration_s=0.5)
    assert cam.recording and cam.streaming
    assert cam.capture_lores().shape == (120, 160)  # lores keeps running for QR while recording
    deadline = time.monotonic() + 5
    while cam.recording and time.monotonic() < deadline:
        time.sleep(0.02)
    took_s = time.monotonic() - t0
    assert not cam.recording and cam.streaming
    assert 0.45 < took_s < 1.5
    assert stopped == [(path, "max duration reached")]
    assert cam.stop_video() == path  # after an auto-stop it still names the file
    info = assert_playable_mp4(path, (320, 240), frames=picam.frames_encoded)
    assert 5 <= info["frames"] <= 17  # 30 fps for 0.5 s, give or take scheduling
    assert [p.name for p in path.parent.iterdir()] == ["v.mp4"]
    assert ffmpeg_children() == []  # the encoder process was reaped
    with Image.open(io.BytesIO(cam.capture_jpeg())) as im:
        assert im.size == (640, 480)  # back to the still configuration


def test_stop_video_by_request_finishes_the_mp4(camera, tmp_path):
    cam, picam = camera
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    assert [p.name for p in tmp_path.iterdir()] == [".v.mp4.part"]  # hidden until finished
    assert len(ffmpeg_children()) == 1
    assert cam.stop_video() == tmp_path / "v.mp4"
    assert not cam.recording
    # Stopping wrote the index (moov) and moved it to the front: playable, every frame there.
    info = assert_playable_mp4(tmp_path / "v.mp4", (320, 240), frames=picam.frames_encoded)
    assert info["frames"] >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert ffmpeg_children() == []
    with pytest.raises(GlassesError):
        cam.start_video(tmp_path / "w.mp4", max_duration_s=0)


def test_encoder_crash_mid_video_leaves_no_half_file(camera, tmp_path):
    cam, _ = camera
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    [pid] = ffmpeg_children()
    os.kill(pid, signal.SIGKILL)  # the encoder dies: the file has no index and cannot play
    with pytest.raises(DeviceError, match="ffmpeg") as err:
        cam.stop_video()
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no half file under the final name, no temp file
    assert ffmpeg_children() == []
    assert cam.capture_lores().shape == (120, 160)  # the camera carries on
    cam.start_video(tmp_path / "w.mp4", max_duration_s=60)  # and records again
    time.sleep(0.2)
    cam.stop_video()
    assert_playable_mp4(tmp_path / "w.mp4", (320, 240))


def test_missing_ffmpeg_is_a_clear_error(camera, tmp_path, monkeypatch):
    cam, _ = camera
    cam.start()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no ffmpeg anywhere on PATH
    with pytest.raises(Unsupported, match="needs the `ffmpeg` program") as err:
        cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    assert "apt-get install ffmpeg" in str(err.value) and "\n" not in str(err.value)
    assert not cam.recording and list(tmp_path.iterdir()) == []
    assert cam.capture_lores().shape == (120, 160)  # photos and lores frames still work
    with Image.open(io.BytesIO(cam.capture_jpeg())) as im:
        assert im.size == (640, 480)  # back in the still configuration


def fake_ffmpeg(tmp_path, monkeypatch, script: str) -> None:
    """Put a program named ffmpeg first on PATH (a broken build, a hung one)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ffmpeg").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_an_ffmpeg_that_cannot_encode_fails_at_start_with_its_message(camera, tmp_path,
                                                                     monkeypatch):
    cam, _ = camera
    fake_ffmpeg(tmp_path, monkeypatch, "echo \"Unknown encoder 'libx264'\" >&2; exit 1")
    videos = tmp_path / "videos"
    with pytest.raises(DeviceError, match="ffmpeg exited \\(exit 1\\) before recording .*"
                                          "Unknown encoder 'libx264'"):
        cam.start_video(videos / "v.mp4", max_duration_s=60)
    assert not cam.recording and list(videos.iterdir()) == []
    assert cam.capture_lores().shape == (120, 160)


def test_a_hung_ffmpeg_is_killed_at_its_deadline(camera, tmp_path, monkeypatch):
    import glasses_firmware.drivers.sim.h264 as h264
    cam, _ = camera
    monkeypatch.setattr(h264, "READY_TIMEOUT_S", 0.5)
    fake_ffmpeg(tmp_path, monkeypatch, "exec sleep 30")  # never reads a frame
    videos = tmp_path / "videos"
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeout, match="did not start writing .* within 0.5 s and was killed"):
        cam.start_video(videos / "v.mp4", max_duration_s=60)
    assert time.monotonic() - t0 < 3
    assert ffmpeg_children("sleep") == [] and list(videos.iterdir()) == []
    assert cam.capture_lores().shape == (120, 160)


def test_mp4_check_refuses_a_file_without_its_index(tmp_path):
    def box(kind, payload=b""):
        return (8 + len(payload)).to_bytes(4, "big") + kind + payload
    whole = box(b"ftyp", b"isom" * 2) + box(b"moov", b"\0" * 20) + box(b"mdat", b"\1" * 50)
    cases = {
        "whole": (whole, 50),
        "no_frames": (box(b"ftyp", b"isom") + box(b"moov") + box(b"mdat"), 0),
        # What a muxer leaves when killed: mdat still open (size 0 = "to the end"), no moov.
        "no_index": (box(b"ftyp", b"isom") + b"\0\0\0\0mdat" + b"\1" * 40, None),
        "truncated": (whole[:-10], None),
        "not_mp4": (b"\xff\xd8\xff\xe0 a JPEG", None),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert mp4_media_bytes(tmp_path / name) == expected, name


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


def test_gone_while_recording_keeps_a_playable_video(camera, tmp_path):
    cam, picam = camera
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    picam.fault = "gone"
    with pytest.raises(GlassesError):
        cam.stop_video()
    # The frames before the fault are kept, finished as a playable file under the final name.
    info = assert_playable_mp4(tmp_path / "v.mp4", (320, 240), frames=picam.frames_encoded)
    assert info["frames"] >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
    assert ffmpeg_children() == []
    picam.fault = None
    assert cam.capture_lores().shape == (120, 160)


def test_a_video_with_no_frames_is_not_saved(camera, tmp_path):
    cam, picam = camera
    cam.start()
    picam.fault = "timeout"  # the sensor sends nothing from the start
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.2)
    with pytest.raises(DeviceError, match="wrote no frames"):
        cam.stop_video()
    assert list(tmp_path.iterdir()) == [] and ffmpeg_children() == []
    picam.fault = None
    assert cam.capture_lores().shape == (120, 160)


def test_noise_detector_accepts_scenes_and_rejects_noise():
    scene = Scene("pattern").render((160, 120), 0, 3)
    assert not looks_like_noise(scene[..., 1])
    assert not looks_like_noise(np.zeros((120, 160), np.uint8))
    rng = np.random.default_rng(1)
    assert looks_like_noise(rng.integers(0, 256, (120, 160), dtype=np.uint8))


def test_close_while_recording_keeps_the_video(tmp_path):
    cam, picam = make_camera()
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    time.sleep(0.3)
    cam.close()
    assert not cam.recording and cam.state == "closed"
    assert assert_playable_mp4(tmp_path / "v.mp4", (320, 240), frames=picam.frames_encoded)["frames"] >= 2
    assert ffmpeg_children() == []


def test_still_while_recording_is_video_sized(camera, tmp_path):
    cam, _ = camera
    cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
    photo = cam.save_photo(tmp_path / "during.jpg")
    cam.stop_video()
    with Image.open(photo.path) as im:
        assert im.size == photo.size == (320, 240)


def test_a_still_is_written_only_when_saved(camera, tmp_path):
    cam, _ = camera
    still = cam.capture_still()
    assert still.jpeg.startswith(b"\xff\xd8") and still.size == (640, 480)
    assert list(tmp_path.iterdir()) == []  # a caller (the interlock) may still discard it
    photo = still.save(tmp_path / "s.jpg")
    assert photo.path.read_bytes() == still.jpeg
    assert (photo.size, photo.sensor_timestamp_ns, photo.wall_s) == \
        (still.size, still.sensor_timestamp_ns, still.wall_s)


# -- which H.264 encoder a board gets ------------------------------------------------------

def test_board_files_name_their_h264_encoder(tmp_path):
    from glasses_firmware import boards
    assert (boards.load("cm5-ref").camera.video_encoder, boards.load("cm4-ref").camera.video_encoder) \
        == ("software", "hardware")  # the CM5 has no H.264 block; the CM4 has one
    assert {boards.load(n).camera.video_codec for n in ("cm5-ref", "cm4-ref", "sim")} == {"h264"}
    text = (boards.BOARDS_DIR / "sim.toml").read_text()
    old = 'video_codec = "h264"\n'
    assert old in text
    bare = tmp_path / "bare.toml"  # a board file from before these keys still loads
    bare.write_text("\n".join(line for line in text.splitlines()
                              if not line.startswith(("video_codec", "video_encoder"))))
    assert (boards.load(str(bare)).camera.video_codec, boards.load(str(bare)).camera.video_encoder) \
        == ("h264", "software")
    for key, bad in (("video_encoder", '"gpu"'), ("video_codec", '"mjpeg"')):
        path = tmp_path / f"bad_{key}.toml"
        path.write_text(text.replace(f"{key} = ", f"{key} = {bad} #", 1))
        with pytest.raises(ConfigError) as err:
            boards.load(str(path))
        assert str(path) in str(err.value) and f"'camera.{key}'" in str(err.value)


class _FakeEncoder:
    """Stands in for picamera2's encoder classes, which need libcamera (not here)."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeV4L2H264Encoder(_FakeEncoder):
    pass


class FakeLibavH264Encoder(_FakeEncoder):
    pass


class FakePyavOutput:
    def __init__(self, output_name, format=None):
        self.output_name, self.format = output_name, format


@pytest.fixture
def fake_picamera2(monkeypatch):
    """picamera2's module layout (libcamera is not here), on a SoC with or without the H.264 block."""
    import sys
    import types

    def install(has_h264_block: bool):
        encoders = types.ModuleType("picamera2.encoders")
        h264 = types.ModuleType("picamera2.encoders.h264_encoder")
        outputs = types.ModuleType("picamera2.outputs")
        h264.H264Encoder = FakeV4L2H264Encoder
        encoders.LibavH264Encoder = FakeLibavH264Encoder
        # picamera2 makes H264Encoder the libav one when /dev/video11 is not the VC4 codec.
        encoders.H264Encoder = FakeV4L2H264Encoder if has_h264_block else FakeLibavH264Encoder
        outputs.PyavOutput = FakePyavOutput
        for name, module in (("picamera2", types.ModuleType("picamera2")),
                             ("picamera2.encoders", encoders),
                             ("picamera2.encoders.h264_encoder", h264),
                             ("picamera2.outputs", outputs)):
            monkeypatch.setitem(sys.modules, name, module)

    return install


@pytest.mark.parametrize("board, has_block, encoder_class", [
    ("cm5-ref", False, FakeLibavH264Encoder),
    ("cm4-ref", True, FakeV4L2H264Encoder),
    ("cm5-ref", True, FakeLibavH264Encoder),   # software works on either SoC
])
def test_bringup_builds_the_board_files_encoder_into_mp4(fake_picamera2, board, has_block,
                                                        encoder_class):
    from glasses_firmware import boards
    from glasses_firmware.drivers.bringup import _video_encoder_factory
    fake_picamera2(has_block)
    factory = _video_encoder_factory(boards.load(board))
    encoder, output = factory("/data/videos/.v.mp4.part")
    assert type(encoder) is encoder_class
    assert encoder.kwargs == {"framerate": 30, "iperiod": 30}
    assert (output.output_name, output.format) == ("/data/videos/.v.mp4.part", "mp4")
    assert factory("/x")[0] is not encoder  # a fresh pair per video


def test_bringup_refuses_hardware_h264_on_a_soc_without_it(fake_picamera2):
    from glasses_firmware import boards
    from glasses_firmware.drivers.bringup import _video_encoder_factory
    fake_picamera2(has_h264_block=False)  # a Pi 5 / CM5
    with pytest.raises(ConfigError, match="'camera.video_encoder' is \"hardware\" but this SoC "
                                          "has no H.264 encoder") as err:
        _video_encoder_factory(boards.load("cm4-ref"))
    assert 'set it to "software"' in str(err.value)


def test_bringup_without_pyav_says_what_to_install(fake_picamera2, monkeypatch):
    import sys

    from glasses_firmware import boards
    from glasses_firmware.drivers.bringup import _video_encoder_factory
    from glasses_firmware.drivers.errors import BusError
    fake_picamera2(has_h264_block=True)
    monkeypatch.setitem(sys.modules, "picamera2.outputs", None)  # PyavOutput needs python3-av
    with pytest.raises(BusError, match="install python3-picamera2 and python3-av"):
        _video_encoder_factory(boards.load("cm4-ref"))

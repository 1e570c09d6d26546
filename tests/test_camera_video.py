"""Camera videos against the sim camera: H.264 in MP4, the ffmpeg encoder and its faults,
and which H.264 encoder bring-up builds for a board.
"""

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from glasses_firmware.drivers.errors import ConfigError, DeviceError, DeviceTimeout, GlassesError, Unsupported
from glasses_firmware.drivers.mp4 import mp4_media_bytes
from tests.test_camera import camera, make_camera  # noqa: F401 (camera is a fixture)


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

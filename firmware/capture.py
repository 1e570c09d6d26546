"""Photo, burst, interval and video capture behind the privacy-LED interlock.

The camera streams only while the capture LED is lit and its read-back confirms it:
the LED goes on first, frames are taken, and the read-back is checked again before a
frame is kept. A video is watched for its whole length. If the read-back disagrees
(a broken or covered LED) capture is refused with an error, an event and a spoken
cue, and nothing is saved.
"""

import asyncio
import logging
from pathlib import Path

from drivers.atomic import write_atomic
from drivers.errors import DeviceError, GlassesError

from . import modes as m
from .arbiter import Busy
from .exif import photo_name, with_exif_time

log = logging.getLogger("glasses.capture")

LED_WATCH_S = 0.2          # how often a running video re-checks the LED read-back
MAX_VIDEO_S = 600.0


class CaptureRefused(GlassesError, RuntimeError):
    """Capture was not allowed; the message says why and what to do."""


class Capture:
    """Capture scheduling for one firmware instance."""

    def __init__(self, fw):
        self.fw = fw
        self.board = fw.board
        self.photos = fw.data_dir / "photos"
        self.videos = fw.data_dir / "videos"
        self._video = None            # (claim, path, watch task) while recording
        self._interval: asyncio.Task | None = None
        self.photos_taken = 0

    # Checks shared by every kind of capture.
    def _check_allowed(self, video: bool) -> None:
        fw, policy = self.fw, self.fw.machine.policy
        mode = fw.machine.mode
        if not policy.camera:
            raise CaptureRefused(f"the camera is off in {mode} mode"
                                 + ("; let it cool down" if mode == m.HOT else ""))
        if video:
            if not policy.video:
                raise CaptureRefused(f"no video in {mode} mode; charge the battery or stop the recording")
            # Budgets from the board file: battery floor and thermal margin for video.
            pct = fw.supervisor.conditions.percent
            floor = fw.config.battery.video_min_percent
            if pct is not None and pct < floor and not fw.supervisor.conditions.charging:
                raise CaptureRefused(f"battery {pct:.0f} % is below {floor:g} % "
                                     "for video; charge first")
            t = fw.supervisor.conditions.temperature_c
            hot = fw.config.thermal.hot_c
            if t is not None and t > hot - fw.config.thermal.video_margin_c:
                raise CaptureRefused(f"{t:.0f} C is too close to the {hot:g} C limit for video")

    def _enter(self) -> bool:
        """Move to CAPTURE if the mode table allows; RECORDING keeps its mode."""
        if self.fw.machine.allowed("capture"):
            self.fw.machine.fire("capture", "capture started")
            return True
        return False

    def _leave(self, entered: bool) -> None:
        if entered and self.fw.machine.mode == m.CAPTURE:
            self.fw.machine.fire("capture_done", "capture finished")

    async def _light(self) -> None:
        """LED on and confirmed, or refuse with error, event and spoken cue."""
        try:
            await self.fw.run_blocking(self.board.capture_led.on)
        except DeviceError as e:
            self.fw.events.emit("capture", f"refused: {e}")
            await self.fw.assistant.speech.say("Camera blocked. The privacy light is covered or broken.")
            raise CaptureRefused(str(e)) from None

    async def photo(self, owner: str = "photo") -> Path:
        return (await self.burst(1, owner=owner))[0]

    async def burst(self, count: int, gap_s: float = 0.0, owner: str = "photo") -> list[Path]:
        if not 1 <= count <= 20:
            raise CaptureRefused(f"burst of {count}: choose 1 to 20 photos")
        self._check_allowed(video=False)
        try:
            claim = self.fw.arbiter.acquire(owner, ["camera"])
        except Busy as e:
            raise CaptureRefused(str(e)) from None
        entered = self._enter()
        saved: list[Path] = []
        try:
            await self._light()
            await self.fw.run_blocking(self.board.camera.start)
            for i in range(count):
                if i and gap_s:
                    await self.fw.clock.asleep(gap_s)
                jpeg = await self.fw.run_blocking(self.board.camera.capture_jpeg)
                if not self.board.capture_led.confirmed():
                    self.fw.events.emit("capture", "refused: LED read-back lost during capture")
                    await self.fw.assistant.speech.say("Camera stopped. The privacy light failed.")
                    raise CaptureRefused("capture LED read-back lost during capture; "
                                         "nothing saved from this frame on")
                wall = self.fw.clock.wall()
                path = self.photos / f"{photo_name(wall)}.jpg"
                data = with_exif_time(jpeg, wall, self.fw.config.camera.sensor)
                await self.fw.run_blocking(write_atomic, path, data)
                saved.append(path)
                self.photos_taken += 1
                self.fw.events.emit("capture", f"photo {path.name}")
            self.fw.cues.earcon("shutter")
            return saved
        finally:
            if self._video is None:
                await self.fw.run_blocking(self.board.camera.stop)
                self.board.capture_led.off()
            self.fw.arbiter.release(claim)
            self._leave(entered)

    # Interval capture: the "what did I see" journal.
    def start_interval(self, every_s: float, count: int | None = None) -> None:
        if every_s < 2:
            raise CaptureRefused("interval must be at least 2 s")
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
                if self.fw.machine.mode in (m.SLEEP, m.CRITICAL):
                    self.fw.events.emit("capture", f"interval stopped: {e}")
                    return
            await self.fw.clock.asleep(every_s)

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
        try:
            claim = self.fw.arbiter.acquire("video", ["camera", "microphones"],
                                            on_preempt=lambda: asyncio.ensure_future(self.stop_video("preempted")))
        except Busy as e:
            raise CaptureRefused(str(e)) from None
        entered = self._enter()
        try:
            await self._light()
            path = self.videos / f"{photo_name(self.fw.clock.wall())}.mjpeg"
            camera = self.board.camera
            camera.on_video_stopped = lambda p, reason: self.fw.loop.call_soon_threadsafe(
                self._video_ended, reason)
            await self.fw.run_blocking(camera.start_video, path, seconds)
        except BaseException:
            self.board.capture_led.off()
            self.fw.arbiter.release(claim)
            self._leave(entered)
            raise
        watch = asyncio.create_task(self._watch_led(), name="video-led-watch")
        self._video = (claim, path, watch, entered)
        self.fw.events.emit("capture", f"video started {path.name} max {seconds:g} s")
        return path

    def _video_ended(self, reason: str) -> None:
        if self._video is not None and reason != "stop requested":
            asyncio.ensure_future(self.stop_video(reason))

    async def _watch_led(self) -> None:
        while True:
            await self.fw.clock.asleep(LED_WATCH_S)
            if not self.board.capture_led.confirmed():
                self.fw.events.emit("capture", "video stopped: LED read-back lost")
                await self.stop_video("LED read-back lost")
                await self.fw.assistant.speech.say("Video stopped. The privacy light failed.")
                return

    async def stop_video(self, reason: str = "stopped") -> Path | None:
        video, self._video = self._video, None
        if video is None:
            return None
        claim, path, watch, entered = video
        if asyncio.current_task() is not watch:
            watch.cancel()
        saved = True
        try:
            if self.board.camera.recording:
                await self.fw.run_blocking(self.board.camera.stop_video)
            await self.fw.run_blocking(self.board.camera.stop)
        except GlassesError as e:
            # The camera failed under the video: what was written is kept by the driver.
            saved = path.exists()
            self.fw.events.emit("fault", f"camera {e}")
        finally:
            self.board.capture_led.off()
            self.fw.arbiter.release(claim)
            self._leave(entered)
        if not saved:
            self.fw.events.emit("capture", f"video {path.name} has no frames ({reason})")
            return None
        self.fw.events.emit("capture", f"video saved {path.name} ({reason})")
        return path

    async def close_all(self, reason: str) -> None:
        """Stop everything that writes files (CRITICAL, shutdown)."""
        self.stop_interval()
        await self.stop_video(reason)

"""Camera driver: full-resolution stills and a low-res stream from one always-on configuration.

It talks to a Picamera2-shaped object (picamera2 on boards, SimPicamera2 on the sim) and
never imports picamera2, so it runs and is tested anywhere. Every call into the camera
goes through `Camera._call`, which enforces a deadline and translates native errors in
one place; a failed camera is restarted by the next call, so a cleared fault recovers.
Videos are H.264 in MP4: bring-up hands in the encoder factory that makes them, and a
video is renamed into place only once it is a whole MP4 (its index written). A
`frame_filter` (face blurring) edits each video frame in place before the encoder sees
it: it is installed as picamera2's `pre_callback` while recording, reaching the main
stream through the `mapped_array` bring-up hands in (picamera2's MappedArray).
"""

import contextlib
import functools
import io
import logging
import os
import threading
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.atomic import FULL_ERRNOS, fsync_dir, storage_full
from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import BusError, ConfigError, DeviceError, DeviceTimeout, GlassesError
from glasses_firmware.drivers.frames import check_size, looks_like_noise
from glasses_firmware.drivers.media import Photo, Recording, Still
from glasses_firmware.drivers.mp4 import mp4_media_bytes
from glasses_firmware.drivers.waits import held, joined

log = logging.getLogger(__name__)

# (state, event) -> next state, in firmware/statetable.py's form; every change goes through
# Camera._fire. The events are the driver's verbs. A declared self-loop changes nothing: a
# failed camera that fails again. A video that could not be finished or saved fails the
# camera, which restarts for stills on the next call.
# drivers/ never imports firmware/, so the move is this driver's own and the diagram in
# docs/architecture.md is drawn from this table by firmware/tools/docgen.py.
INITIAL = "stopped"
_OPEN = ("stopped", "streaming", "recording", "failed")
TRANSITIONS = {
    ("stopped", "start"): "streaming",
    ("failed", "start"): "streaming",           # a failed camera restarts on the next call
    ("streaming", "start_video"): "recording",
    ("recording", "stop_video"): "streaming",   # asked, or at max_duration_s
    ("failed", "stop_video"): "streaming",
    **{(s, "stop"): "stopped" for s in ("streaming", "recording", "failed")},
    **{(s, "fail"): "failed" for s in _OPEN},
    **{(s, "close"): "closed" for s in _OPEN},
}

_HINT = ("the camera restarts on the next call; if this persists, check the CSI ribbon "
         "cable and run `rpicam-hello --list-cameras`")


class Camera:
    """Camera Module 3 (IMX708) through a Picamera2-shaped `picam`; thread-safe, every wait bounded.

    `encoder_factory(path)` returns the (encoder, output) pair that `picam.start_encoder`
    takes, writing H.264 in an MP4 container to `path` (drivers/bringup.py builds it from
    the board file). Raises DeviceError / BusError / DeviceTimeout (all GlassesError)
    naming the camera.

    `frame_filter(array)`, if set, edits every video frame in place (HxWx3 uint8 as the
    main stream lies in memory: B, G, R for RGB888) before the encoder sees it; it runs on
    the camera's thread and must keep up with the frame rate. A frame it fails on is
    blacked out, never encoded as it was. `mapped_array(request, "main")` is picamera2's
    MappedArray (SimMappedArray on the sim).
    """

    def __init__(self, picam, encoder_factory, still_size=(4608, 2592), lores_size=(640, 360),
                 video_size=(1920, 1080), fps=30, clock: Clock | None = None,
                 jpeg_quality=90, capture_timeout_s=2.0, start_timeout_s=5.0, name="cam0",
                 frame_filter=None, mapped_array=None):
        self._still_size = check_size("still_size", still_size)
        self._lores_size = check_size("lores_size", lores_size)
        self._video_size = check_size("video_size", video_size)
        for main_name, main in (("still_size", self._still_size), ("video_size", self._video_size)):
            if self._lores_size[0] > main[0] or self._lores_size[1] > main[1]:
                raise ConfigError(f"camera lores_size={lores_size} is larger than {main_name}={main}")
        if not 0 < fps <= 120:
            raise ConfigError(f"camera fps={fps}: must be in (0, 120]")
        if not 1 <= jpeg_quality <= 100:
            raise ConfigError(f"camera jpeg_quality={jpeg_quality}: must be 1..100")
        if capture_timeout_s <= 0 or start_timeout_s <= 0:
            raise ConfigError("camera timeouts must be positive")
        self._picam = picam
        self._encoder_factory = encoder_factory
        self._fps = fps
        self._clock = clock if clock is not None else Clock()
        self._capture_timeout_s = capture_timeout_s
        self._start_timeout_s = start_timeout_s
        # A restart is stop + configure + start; a caller waits at most for a few of those.
        self._lock_timeout_s = 4 * start_timeout_s + capture_timeout_s
        self._name = name
        props = getattr(picam, "camera_properties", None) or {}
        self._model = str(props.get("Model", "camera"))
        self._sensor_size = tuple(props.get("PixelArraySize", self._still_size))
        self._lock = threading.RLock()
        self._state = INITIAL
        self._video: Recording | None = None
        self._last_video: Path | None = None
        self.on_video_stopped = None  # callable(path, reason), called from the camera's thread
        self.frame_filter = frame_filter  # read when a video starts
        self._mapped_array = mapped_array
        picam.options["quality"] = jpeg_quality

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def streaming(self) -> bool:
        """True while the sensor runs (stills or video): the power model counts this."""
        return self._state in ("streaming", "recording")

    @property
    def recording(self) -> bool:
        return self._state == "recording"

    def _fire(self, event: str, reason: str) -> None:
        """The one way `_state` changes: by TRANSITIONS, logged with the reason."""
        new = TRANSITIONS.get((self._state, event))
        if new is None:
            raise RuntimeError(f"{self._name}: {event} is not allowed in state {self._state} "
                               f"({reason})")
        if new == self._state:
            return
        log.info("%s: %s -> %s on %s (%s)", self._name, self._state, new, event, reason)
        self._state = new

    @contextlib.contextmanager
    def _op(self, what: str):
        with held(self._lock, self._lock_timeout_s, f"{self._name}: {what}: camera"):
            try:
                if self._state == "closed":
                    raise GlassesError(f"{self._name}: {what}: camera is closed")
                yield
            except (BusError, DeviceError, DeviceTimeout) as exc:
                if self._state != "closed":
                    self._fire("fail", str(exc))
                raise

    # -- the one choke point into the camera ---------------------------------------------

    def _call(self, what: str, fn, *args, timeout_s: float | None = None, **kwargs):
        timeout_s = self._capture_timeout_s if timeout_s is None else timeout_s
        result = {}
        done = threading.Event()

        def run():
            try:
                result["value"] = fn(*args, **kwargs)
            except BaseException as exc:  # handed to the caller's thread, which translates it
                result["error"] = exc
            finally:
                done.set()

        # A fresh daemon thread per call: if libcamera hangs, only that thread is lost and
        # the next call (after a restart) is not queued behind it.
        threading.Thread(target=run, name=f"{self._name}-{what}", daemon=True).start()
        if not done.wait(timeout_s):
            raise DeviceTimeout(f"{self._name} ({self._model}): {what} got no answer within "
                                f"{timeout_s:g} s; {_HINT}")
        if "error" in result:
            exc = result["error"]
            translated = self._translate(what, exc)
            if translated is exc:
                raise exc
            raise translated from exc
        return result.get("value")

    def _translate(self, what: str, exc: BaseException) -> BaseException:
        if isinstance(exc, GlassesError):
            return exc
        msg = f"{self._name} ({self._model}): {what} failed: {exc}; {_HINT}"
        # libcamera reports a dead CSI link as RuntimeError("... timed out ...").
        if isinstance(exc, TimeoutError) or (isinstance(exc, (OSError, RuntimeError))
                                             and "timed out" in str(exc).lower()):
            return DeviceTimeout(msg)
        if isinstance(exc, OSError):
            return BusError(msg)
        if isinstance(exc, RuntimeError):
            return DeviceError(msg)
        return exc  # anything else is a bug or a bad argument: let it surface unchanged

    # -- configurations -------------------------------------------------------------------

    def _reconfigure(self, use_case: str) -> None:
        picam, t = self._picam, self._start_timeout_s
        lores = {"size": self._lores_size, "format": "YUV420"}
        frame_us = int(1e6 / self._fps)
        if use_case == "still":
            # Full resolution streams all the time, so a still is one frame away; the
            # frame-duration cap keeps low-light exposure (and a still's latency) bounded.
            create = picam.create_still_configuration
            main = {"size": self._still_size, "format": "RGB888"}
            kwargs = {"buffer_count": 2, "controls": {"FrameDurationLimits": (frame_us, 100_000)}}
        else:
            create = picam.create_video_configuration
            # RGB888 rather than YUV420: the H.264 encoders (V4L2 and libav) take it, and
            # picamera2 can only make a JPEG (a still taken while recording) from an RGB stream.
            main = {"size": self._video_size, "format": "RGB888"}
            kwargs = {"buffer_count": 6, "controls": {"FrameDurationLimits": (frame_us, frame_us)}}
        config = self._call(f"create {use_case} configuration", create, main=main, lores=lores,
                            timeout_s=t, **kwargs)
        self._call("stop", picam.stop, timeout_s=t)
        self._call(f"configure {use_case}", picam.configure, config, timeout_s=t)
        self._call(f"start {use_case}", picam.start, timeout_s=t)

    def _ensure_streaming(self) -> None:
        if self._state in ("streaming", "recording"):
            return
        if self._state == "failed":
            self._recover()
        self._reconfigure("still")
        self._fire("start", "started")

    def _recover(self) -> None:
        """Best-effort teardown after a failure; what the camera says here is only logged."""
        if self._video is not None:
            try:
                self._finish_video("camera failed", restart=False)
            except GlassesError as exc:
                log.warning("%s: video lost its ending: %s", self._name, exc)
        try:
            self._call("stop", self._picam.stop, timeout_s=self._start_timeout_s)
        except GlassesError as exc:
            log.warning("%s: %s", self._name, exc)

    # -- public API -------------------------------------------------------------------------

    def start(self) -> None:
        """Stream the still configuration (full-res main + lores); restarts a failed camera."""
        with self._op("start"):
            self._ensure_streaming()

    def stop(self) -> None:
        """Stop streaming (and any video); the sensor then draws no power."""
        with self._op("stop"):
            if self._state == "stopped":
                return
            if self._state == "failed":
                self._recover()
            else:
                if self._video is not None:
                    self._finish_video("camera stopped", restart=False)
                self._call("stop", self._picam.stop, timeout_s=self._start_timeout_s)
            self._fire("stop", "stop requested")

    def close(self) -> None:
        """Stop and release the camera; idempotent, never raises for a misbehaving camera."""
        if self._state == "closed":
            return
        if not self._lock.acquire(timeout=self._lock_timeout_s):
            raise DeviceTimeout(f"{self._name}: close: camera busy for {self._lock_timeout_s:g} s")
        rec = self._video
        try:
            if self._state == "closed":
                return
            self._recover()
            try:
                self._call("close", self._picam.close, timeout_s=self._start_timeout_s)
            except GlassesError as exc:
                log.warning("%s: %s", self._name, exc)
            self._fire("close", "close requested")
        finally:
            self._lock.release()
        if rec is not None:
            joined(rec.timer, self._lock_timeout_s)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def capture_lores(self) -> np.ndarray:
        """The next low-res frame's Y (luma) plane, uint8 HxW, for QR/OCR."""
        with self._op("capture lores"):
            self._ensure_streaming()
            return self._luma(self._call("capture lores frame", self._picam.capture_array, "lores"))

    def _luma(self, yuv) -> np.ndarray:
        w, h = self._lores_size
        # picamera2 gives YUV420 as (h*3//2, stride): Y rows first; stride may pad past w.
        if (not isinstance(yuv, np.ndarray) or yuv.dtype != np.uint8 or yuv.ndim != 2
                or yuv.shape[0] != h * 3 // 2 or yuv.shape[1] < w):
            shape = getattr(yuv, "shape", type(yuv).__name__)
            raise DeviceError(f"{self._name} ({self._model}): lores frame is {shape}, expected "
                              f"({h * 3 // 2}, {w}) uint8 YUV420; {_HINT}")
        luma = np.ascontiguousarray(yuv[:h, :w])
        if looks_like_noise(luma):
            raise DeviceError(f"{self._name} ({self._model}): frames are random noise (mean luma "
                              f"{luma.mean():.0f}), the CSI link is corrupting data; {_HINT}")
        return luma

    def capture_still(self) -> Still:
        """The next main-stream frame as a JPEG (still_size; video_size while recording)."""
        with self._op("capture still"):
            self._ensure_streaming()
            buf = io.BytesIO()
            metadata = self._call("capture still", self._picam.capture_file, buf,
                                  name="main", format="jpeg")
            wall_s = self._clock.wall()
            if not isinstance(metadata, dict):  # older picamera2 returned nothing here
                metadata = self._call("read metadata", self._picam.capture_metadata)
            data = buf.getvalue()
            if not data.startswith(b"\xff\xd8"):
                raise DeviceError(f"{self._name} ({self._model}): still is not a JPEG "
                                  f"({len(data)} bytes); {_HINT}")
            size = self._video_size if self.recording else self._still_size
            return Still(data, size, int(metadata.get("SensorTimestamp", 0)), wall_s)

    def capture_jpeg(self) -> bytes:
        """A JPEG of the next main-stream frame (still_size; video_size while recording)."""
        return self.capture_still().jpeg

    def save_photo(self, path: str | os.PathLike) -> Photo:
        """Capture a still and write it atomically to `path`; returns when it was taken."""
        return self.capture_still().save(path)

    def start_video(self, path: str | os.PathLike, max_duration_s: float) -> None:
        """Switch to the video configuration and record to `path`; stops by itself at max_duration_s."""
        if not max_duration_s > 0:
            raise ConfigError(f"{self._name}: max_duration_s={max_duration_s} must be positive")
        path = Path(path)
        with self._op("start video"):
            if self._video is not None:
                raise GlassesError(f"{self._name}: already recording to {self._video.path}")
            self._ensure_streaming()
            path.parent.mkdir(parents=True, exist_ok=True)
            # The encoder writes a hidden temp file; stop_video renames it, so the data
            # directory never shows a half-written video.
            rec = Recording(path, path.with_name(f".{path.name}.part"), max_duration_s,
                             threading.Event(), frame_filter=self.frame_filter)
            if rec.frame_filter is not None and self._mapped_array is None:
                raise ConfigError(f"{self._name}: a frame filter is set but the camera was given "
                                  "no mapped_array to reach the frames with")
            self._reconfigure("video")
            try:
                # Before the encoder starts, so its first frame is filtered too.
                self._picam.pre_callback = (functools.partial(self._filter_request, rec)
                                            if rec.frame_filter is not None else None)
                encoder, output = self._encoder_factory(str(rec.tmp_path))
                self._call("start encoder", self._picam.start_encoder, encoder, output,
                           timeout_s=self._start_timeout_s)
            except BaseException as exc:
                self._abandon_video(rec, exc)
                raise
            self._video = rec
            self._fire("start_video", f"video to {path}, at most {max_duration_s:g} s")
            rec.timer = threading.Thread(target=self._video_timer, args=(rec,),
                                         name=f"{self._name}-video-timer", daemon=True)
            rec.timer.start()

    def stop_video(self) -> Path:
        """Stop recording and return to stills; returns the video's path (also after an auto-stop)."""
        with self._op("stop video"):
            rec = self._video
            if rec is None:
                if self._last_video is not None:
                    return self._last_video
                raise GlassesError(f"{self._name}: stop video: not recording")
            path = self._finish_video("stop requested", restart=True)
        joined(rec.timer, self._lock_timeout_s)
        return path

    def _filter_request(self, rec: Recording, request) -> None:
        """picamera2's pre_callback while recording (camera thread): the frame filter on "main"."""
        with self._mapped_array(request, "main") as mapped:
            frame = mapped.array
            try:
                rec.frame_filter(frame)
            except Exception:  # fail closed: a frame the filter could not edit is not kept
                frame[...] = 0
                if not rec.filter_failed:
                    rec.filter_failed = True
                    log.exception("%s: the frame filter failed; its frames are blacked out", self._name)

    def _video_timer(self, rec: Recording) -> None:
        if not self._clock.sleep(rec.max_duration_s, rec.stop):
            return  # stopped by request
        try:
            with self._op("stop video at max duration"):
                if self._video is rec:
                    self._finish_video("max duration reached", restart=True)
        except GlassesError as exc:
            log.warning("%s: %s", self._name, exc)

    def _finish_video(self, reason: str, restart: bool) -> Path:
        rec, self._video = self._video, None
        rec.stop.set()
        self._last_video = None
        try:
            self._stop_and_commit(rec)
        except BaseException as exc:
            # Still in the video configuration: fail, so the next call restarts for stills.
            if self._state != "closed":
                self._fire("fail", f"video did not finish: {exc}")
            raise
        finally:
            if self.on_video_stopped is not None:
                self.on_video_stopped(rec.path, reason)
        if restart:
            self._reconfigure("still")
            self._fire("stop_video", f"video ended: {reason}")
        return rec.path

    def _stop_and_commit(self, rec: Recording) -> None:
        stop_error = None
        try:
            self._call("stop encoder", self._picam.stop_encoder, timeout_s=self._start_timeout_s)
        except BaseException as exc:
            stop_error = exc
            raise
        finally:
            self._picam.pre_callback = None
            # Even if the encoder did not stop cleanly, a finished file is kept; an
            # unfinished one is removed, with the encoder's error in the message.
            self._commit_video(rec, stop_error)
            self._last_video = rec.path

    def _abandon_video(self, rec: Recording, exc: BaseException) -> None:
        """A video that did not start: no encoder left running, no temp file, camera restarted next call."""
        try:
            self._call("stop encoder", self._picam.stop_encoder, timeout_s=self._start_timeout_s)
        except Exception as stop_exc:  # it may never have started; the start's error is the one to report
            log.warning("%s: stopping a half-started encoder: %s", self._name, stop_exc)
        self._picam.pre_callback = None
        rec.tmp_path.unlink(missing_ok=True)
        if self._state != "closed":
            # Still in the video configuration: the next call restarts the camera for stills.
            self._fire("fail", f"video did not start: {exc}")

    def _commit_video(self, rec: Recording, stop_error: BaseException | None = None) -> None:
        tmp = rec.tmp_path
        size = tmp.stat().st_size if tmp.exists() else 0
        media = mp4_media_bytes(tmp) if size else 0
        if not media:
            tmp.unlink(missing_ok=True)
            if media is None:
                # Not playable (no index): under the final name it would be a broken video.
                said = f" ({stop_error})" if stop_error is not None else ""
                raise DeviceError(f"{self._name} ({self._model}): the encoder stopped without "
                                  f"finishing {rec.path} ({size} bytes, no MP4 index){said}, so "
                                  f"nothing was saved; {_HINT}")
            raise DeviceError(f"{self._name} ({self._model}): the encoder wrote no frames for "
                              f"{rec.path}; {_HINT}")
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the real encoder's FileOutput does not fsync
            finally:
                os.close(fd)
            os.replace(tmp, rec.path)
        except OSError as e:
            # The finished video stays under its temporary name, said here, until the data
            # directory's next start clears temporaries: copy it off before then.
            if e.errno in FULL_ERRNOS:
                raise storage_full(rec.path, "video") from e
            raise DeviceError(f"{self._name}: the video is finished but could not be saved as "
                              f"{rec.path} ({e.strerror or e}); it is in {tmp} until the next "
                              "start; check the card (free space, read-only, a directory in "
                              "the way)") from e
        fsync_dir(rec.path.parent)

    def probe(self) -> str:
        """Selftest: start if needed, read one lores frame; a one-line detail or a GlassesError."""
        was_stopped = self.state == "stopped"
        try:
            with self._op("probe"):
                self._ensure_streaming()
                luma = self._luma(self._call("probe lores frame", self._picam.capture_array, "lores"))
        finally:
            if was_stopped and self.streaming:
                self.stop()  # a selftest must not leave the camera streaming
        (sw, sh), (lw, lh) = self._sensor_size, self._lores_size
        return f"{self._model} {sw}x{sh}, lores {lw}x{lh}, mean luma {luma.mean():.0f}"

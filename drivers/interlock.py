"""The privacy interlock: the only camera the board exposes.

The raw camera streams whenever asked; this wrapper lets it stream only while the
capture LED is driven on and its read-back (a photodiode on the LED) confirms it. The
LED is lit and read back before the sensor starts, every frame is checked again after
it is read, and a read-back that drops while streaming stops the stream at once (an
edge callback on the read-back input), so no path - stills, lores frames for QR/OCR,
video, selftest - gets a frame the wearer was not shown.
"""

import contextlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import DeviceError, DeviceTimeout, GlassesError
from .leds import PrivacyLED
from .media import Photo
from .waits import held, joined

log = logging.getLogger(__name__)

_CHECK_LED = "check the capture LED (broken or covered) and try again"


class InterlockError(DeviceError):
    """The privacy LED did not read back as lit, so the camera gave no frame."""


class InterlockedCamera:
    """The camera, streaming only while the privacy LED is lit and reads back as lit.

    Thread-safe; every wait is bounded by `busy_timeout_s`. Refusals and trips raise
    InterlockError (a DeviceError); camera faults raise the camera's own GlassesErrors,
    and a failed camera leaves the LED off.
    """

    def __init__(self, camera: Camera, led: PrivacyLED, busy_timeout_s: float = 60.0,
                 name: str = "cam0"):
        self._camera = camera
        self._led = led
        # Longer than the camera's own worst case (a restart plus a capture, about 22 s
        # with its defaults): a waiting caller times out only when something is stuck.
        self._busy_timeout_s = busy_timeout_s
        self._name = name
        self._lock = threading.RLock()
        self._armed = False         # we lit the LED for a stream: its going dark is a trip
        self._closed = False
        self._trip_reason = None    # set under the lock, reported once the lock is released
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self.on_tripped = None      # callable(reason: str), called from a driver thread
        led.readback.when_deactivated = self._readback_dropped

    # -- what the rest of the firmware sees ------------------------------------------------

    @property
    def state(self) -> str:
        return self._camera.state

    @property
    def streaming(self) -> bool:
        return self._camera.streaming

    @property
    def recording(self) -> bool:
        return self._camera.recording

    @property
    def on_video_stopped(self):
        return self._camera.on_video_stopped

    @on_video_stopped.setter
    def on_video_stopped(self, callback) -> None:
        self._camera.on_video_stopped = callback  # callable(path, reason), from the camera's thread

    @property
    def led_driven(self) -> bool:
        """The LED's output is on (what the power model counts)."""
        return self._led.driven

    def led_confirmed(self) -> bool:
        """The LED is driven on and reads back as on."""
        return self._led.confirmed()

    # -- the lock, and the rule every operation ends with ------------------------------

    @contextlib.contextmanager
    def _op(self, what: str):
        reason = None
        try:
            with held(self._lock, self._busy_timeout_s, f"{self._name}: {what}: camera"):
                try:
                    if self._closed:
                        raise GlassesError(f"{self._name}: {what}: camera is closed")
                    if self._armed and not self._camera.streaming:
                        # The camera failed behind our back (a video's restart, say): no
                        # stream, no LED.
                        self._shutdown("the camera stopped streaming", quiet=True)
                    was_streaming = self._camera.streaming
                    try:
                        yield
                    except BaseException:
                        # A failed call leaves things as it found them, and a failed camera dark.
                        if not was_streaming or not self._camera.streaming:
                            self._shutdown(f"{what} failed", quiet=True)
                        raise
                finally:
                    reason, self._trip_reason = self._trip_reason, None
        finally:
            if reason is not None:   # told outside the lock: the callback may call us back
                self._report_trip(reason)

    def _start_locked(self) -> None:
        if self._armed and self._camera.streaming:
            return
        try:
            self._led.on()  # lit and read back, or DeviceError with the LED left off
        except DeviceError as exc:
            raise InterlockError(f"{self._name}: {exc}") from exc
        self._armed = True
        self._camera.start()  # if it fails, _op turns the LED off again

    def _check_locked(self, what: str, lost: str = "the frame was discarded") -> None:
        """Raise InterlockError, after stopping everything, unless the read-back confirms."""
        if self._led.confirmed():
            return
        self._trip_locked(f"privacy LED read-back lost during {what}")
        raise InterlockError(f"{self._name}: {what}: the privacy LED read-back was lost; camera "
                             f"stopped and {lost}; {_CHECK_LED}")

    def _trip_locked(self, reason: str) -> None:
        if not self._armed:
            return  # already stopped, by request or by an earlier trip
        log.error("%s: privacy interlock tripped: %s; stopping the camera", self._name, reason)
        self._shutdown(reason, quiet=True)
        self._trip_reason = reason

    def _shutdown(self, why: str, quiet: bool) -> None:
        """Camera (and any video) stopped, then the LED off - off even if the camera does not stop."""
        self._armed = False  # from here on the LED going dark is ours, not a trip
        try:
            self._camera.stop()
        except GlassesError as exc:
            if not quiet:
                raise
            log.warning("%s: stopping after %s: %s", self._name, why, exc)
        finally:
            self._led.off()

    def _report_trip(self, reason: str) -> None:
        if self.on_tripped is None:
            return
        try:
            self.on_tripped(reason)
        except Exception:  # the firmware's callback: its bug must not undo the trip
            log.exception("%s: on_tripped(%r) failed", self._name, reason)

    # -- the read-back edge --------------------------------------------------------------

    def _readback_dropped(self) -> None:
        # gpiozero calls this in whatever thread moved the pin (the mock factory) or in its
        # own callback thread (lgpio): never block here, hand the stop to a worker.
        if not self._armed:
            return  # our own stop() turning the LED off, or nothing streaming
        worker = threading.Thread(target=self._trip_worker, name=f"{self._name}-interlock-trip",
                                  daemon=True)
        with self._workers_lock:
            self._workers = [t for t in self._workers if t.is_alive()] + [worker]
        worker.start()

    def _trip_worker(self) -> None:
        # Strict on purpose: a read-back that flickered back on by now still stops the stream.
        try:
            with self._op("interlock trip"):
                self._trip_locked("privacy LED read-back lost while streaming")
        except GlassesError as exc:
            if self._closed:
                return  # close() stopped everything already
            log.error("%s: could not stop the camera after the read-back dropped: %s",
                      self._name, exc)

    # -- public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Light the LED and confirm its read-back, then stream; InterlockError if it does not."""
        with self._op("start"):
            self._start_locked()
            self._check_locked("start", lost="nothing was captured")

    def stop(self) -> None:
        """Stop the camera (and any video), then turn the LED off; idempotent."""
        if self._closed:
            return  # close() stopped everything
        with self._op("stop"):
            self._shutdown("stop requested", quiet=False)

    def _frame(self, what: str, read):
        with self._op(what):
            return self._frame_locked(what, read)

    def _frame_locked(self, what: str, read):
        self._start_locked()
        self._check_locked(what, lost="no frame was read")
        frame = read()
        self._check_locked(what)  # the LED must still be lit once the frame is in
        return frame

    def capture_jpeg(self) -> bytes:
        """A JPEG of the next main-stream frame, taken while the LED read back as lit."""
        return self._frame("capture still", self._camera.capture_jpeg)

    def capture_lores(self) -> np.ndarray:
        """The next low-res luma frame (uint8 HxW, for QR/OCR), taken while the LED read back as lit."""
        return self._frame("capture lores", self._camera.capture_lores)

    def save_photo(self, path: str | os.PathLike) -> Photo:
        """Capture a still and write it atomically; nothing is written if the read-back was lost."""
        return self._frame("save photo", self._camera.capture_still).save(path)

    def start_video(self, path: str | os.PathLike, max_duration_s: float) -> None:
        """Record to `path` while the LED reads back as lit; stops by itself at max_duration_s."""
        with self._op("start video"):
            self._start_locked()
            self._check_locked("start video", lost="no video was started")
            self._camera.start_video(path, max_duration_s)
            self._check_locked("start video", lost="the video was stopped")

    def stop_video(self) -> Path:
        """Stop recording (the camera keeps streaming); returns the video's path."""
        with self._op("stop video"):
            return self._camera.stop_video()

    def probe(self) -> str:
        """Selftest: one lores frame with the LED lit and read back; leaves the camera as it was."""
        with self._op("probe"):
            was_streaming = self._camera.streaming
            detail = self._frame_locked("probe", self._camera.probe)
            if not was_streaming:
                self._shutdown("probe done", quiet=False)
        return f"{detail}; privacy LED lit and read back during the frame"

    def led_probe(self) -> str:
        """Selftest of the LED: the read-back follows it both ways (not toggled while streaming)."""
        with self._op("LED probe"):
            if self._armed:
                # Toggling now would trip the interlock: the confirmed read-back is the proof.
                self._check_locked("LED probe", lost="nothing was captured")
                return "lit and read back (camera streaming)"
            return self._led.probe()

    def close(self) -> None:
        """Stop and release the camera and the LED; idempotent, leaves the LED off.

        If another call is stuck past busy_timeout_s, raises DeviceTimeout and leaves the
        LED as it is: a camera that may still stream must not go dark.
        """
        if self._closed:
            return
        if not self._lock.acquire(timeout=self._busy_timeout_s):
            raise DeviceTimeout(f"{self._name}: close: camera busy for {self._busy_timeout_s:g} s")
        try:
            if self._closed:
                return
            self._closed = True
            self._armed = False
            self._led.readback.when_deactivated = None
            try:
                self._camera.close()
            finally:
                self._led.off()
                self._led.close()
        finally:
            self._lock.release()
        with self._workers_lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            joined(worker, self._busy_timeout_s)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

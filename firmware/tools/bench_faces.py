"""Face blurring speed: per 12 MP photo and per video frame, ours vs onnxruntime called directly.

The input is a card with a real face (Grace Hopper's portrait from matplotlib's sample data)
at the sim camera's sizes: a 4608x2592 JPEG (quality 90) for photos, a 1920x1080 B,G,R
frame for video. "bare" runs the same CenterFace file in a plain onnxruntime session, same
threads, on the same detection input, so `ours / bare` is what decoding, resizing, box
decoding, blurring and re-encoding add to the inference itself. Best of `rounds`.
"""

import io
import json
import time
from pathlib import Path

import cv2
import numpy as np

from glasses_firmware.firmware.capture import faces as f

PHOTO_SIZE = (4608, 2592)
VIDEO_SIZE = (1920, 1080)
FPS = 30


def face_card(size) -> np.ndarray:
    """RGB `size` (w, h): the portrait on the left third, grey elsewhere."""
    import matplotlib
    from PIL import Image
    w, h = size
    card = np.full((h, w, 3), 128, np.uint8)
    with Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg") as im:
        ph = h * 2 // 3
        pw = ph * im.width // im.height
        card[h // 6:h // 6 + ph, w // 16:w // 16 + pw] = np.asarray(im.convert("RGB").resize((pw, ph)))
    return card


def _best_ms(fn, rounds: int) -> float:
    fn()  # warm-up: first-run allocations
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def _blob(rgb: np.ndarray, width: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    dw = int(round(width / 32)) * 32
    dh = int(round(dw * h / w / 32)) * 32
    small = cv2.resize(rgb, (dw, dh), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None], np.float32)


def run(threads: int = 2, rounds: int = 5) -> dict:
    import onnxruntime as ort
    from PIL import Image
    ours = f.FaceBlur(threads)
    ours.load()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = threads, 1, 3
    bare = ort.InferenceSession(f.dynamic_shapes(f.find_model().read_bytes()), opts,
                                providers=["CPUExecutionProvider"])

    def infer(blob):
        return bare.run(list(f.OUTPUTS), {f.INPUT: blob})

    # A 12 MP photo, as the camera hands it over.
    buf = io.BytesIO()
    Image.fromarray(face_card(PHOTO_SIZE)).save(buf, "JPEG", quality=f.JPEG_QUALITY)
    jpeg = buf.getvalue()
    _, faces = ours.blur_jpeg(jpeg)
    quarter = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)[..., ::-1]
    photo_blob = _blob(quarter, f.PHOTO_DETECT_WIDTH)
    photo = {
        "size": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}", "detect_input": f"{photo_blob.shape[3]}x{photo_blob.shape[2]}",
        "faces": faces,
        "ours_ms": _best_ms(lambda: ours.blur_jpeg(jpeg), rounds),
        "bare_ms": _best_ms(lambda: infer(photo_blob), rounds),
        "decode_full_ms": _best_ms(lambda: cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), rounds),
    }
    photo["ratio"] = photo["ours_ms"] / photo["bare_ms"]

    # A video frame, as picamera2's pre_callback gets it (RGB888: B, G, R in memory).
    frame = np.ascontiguousarray(face_card(VIDEO_SIZE)[..., ::-1])
    video_blob = _blob(frame[..., ::-1], f.VIDEO_DETECT_WIDTH)
    every = f.VIDEO_DETECT_EVERY
    flt = ours.video_filter()

    def frames():   # `every` frames: one detection, then boxes carried forward
        for _ in range(every):
            flt(frame.copy())

    def copies():
        for _ in range(every):
            frame.copy()

    ours_group = _best_ms(frames, rounds) - _best_ms(copies, rounds)
    detect_frame = _best_ms(lambda: ours.video_filter()(frame.copy()), rounds)
    video = {
        "size": f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}", "detect_input": f"{video_blob.shape[3]}x{video_blob.shape[2]}",
        "detect_every": every, "faces": int(flt.frames_with_faces > 0),
        "ours_ms_per_frame": ours_group / every,
        "ours_detect_frame_ms": detect_frame,
        "bare_ms": _best_ms(lambda: infer(video_blob), rounds),
        "frame_budget_ms": 1000 / FPS,
    }
    video["ratio_detect_frame"] = video["ours_detect_frame_ms"] / video["bare_ms"]
    return {"threads": threads, "photo": photo, "video": video}


def main(as_json: bool = False, threads: int = 2, rounds: int = 5) -> int:
    r = run(threads, rounds)
    if as_json:
        print(json.dumps(r))
        return 0
    p, v = r["photo"], r["video"]
    print(f"face blur, {r['threads']} threads, best of {rounds}")
    print(f"  photo {p['size']} JPEG ({p['faces']} face): ours {p['ours_ms']:.0f} ms "
          f"(decode, detect at {p['detect_input']}, blur, re-encode); bare onnxruntime "
          f"{p['bare_ms']:.0f} ms; ours/bare {p['ratio']:.2f}; a full decode alone {p['decode_full_ms']:.0f} ms")
    print(f"  video frame {v['size']}: detection frame ours {v['ours_detect_frame_ms']:.1f} ms, "
          f"bare onnxruntime {v['bare_ms']:.1f} ms at {v['detect_input']} (ours/bare "
          f"{v['ratio_detect_frame']:.2f}); averaged over 1 detection in {v['detect_every']} "
          f"frames {v['ours_ms_per_frame']:.1f} ms per frame; budget {v['frame_budget_ms']:.1f} ms at {FPS} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

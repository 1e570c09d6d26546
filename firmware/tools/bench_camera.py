"""`glasses bench --camera`: from a frame to a decoded QR code, on the sim board's real drivers.

Three figures, in one run:
- decode: the scanner's decode() on a lores luma frame against zxing-cpp's read_barcodes
  called directly on the same frame (the ratio is what the firmware adds);
- frame to code: a lores frame through the privacy interlock (LED lit and read back, the
  sensor started, one frame, stopped) and decoded, as `scan` does it;
- the same for a full-resolution still decoded from its JPEG, for codes too small for lores.
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zxingcpp
from PIL import Image

from glasses_firmware.firmware.payments.scanner import FORMATS, decode

ROUNDS = 30
PAYLOAD = ("00020101021226370013com.example.pay0116shop-000123456752045812530370254"
           "0512.505802SG5914Joe's Noodles6009Singapore6304ABCD")   # CRC is not checked here


def _scene(path: Path, size=(1280, 720), fraction: float = 0.75) -> Path:
    module = np.array(zxingcpp.create_barcode(PAYLOAD, zxingcpp.BarcodeFormat.QRCode).to_image(scale=1))
    side = int(size[1] * fraction)
    code = Image.fromarray(module).resize((side, side), Image.NEAREST)
    canvas = Image.new("RGB", size, (230, 225, 215))
    canvas.paste(code, ((size[0] - side) // 2, (size[1] - side) // 2))
    canvas.save(path)
    return path


def _ms(samples: list[float]) -> dict:
    return {"median_ms": statistics.median(samples) * 1000, "best_ms": min(samples) * 1000}


def measure(rounds: int = ROUNDS) -> dict:
    from glasses_firmware import boards
    from glasses_firmware.drivers.bringup import Board
    from glasses_firmware.drivers.clock import Clock
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        config = boards.load("sim")
        board = Board(config, Path(tmp), Clock())
        try:
            board.sim.scene.set(_scene(Path(tmp) / "qr.png"))
            cam = board.camera
            luma = cam.capture_lores()
            ours, direct = [], []
            for _ in range(rounds):              # interleaved: the same load for both
                t0 = time.perf_counter()
                codes = decode(luma)
                ours.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                zxingcpp.read_barcodes(luma, formats=FORMATS)
                direct.append(time.perf_counter() - t0)
            assert codes and codes[0].text == PAYLOAD, "the bench's code was not read"
            out["decode_lores"] = {**_ms(ours), "direct": _ms(direct),
                                   "ratio": statistics.median(ours) / statistics.median(direct),
                                   "frame": f"{luma.shape[1]}x{luma.shape[0]}"}
            cam.stop()
            cold, found = [], 0
            for _ in range(max(5, rounds // 3)):
                t0 = time.perf_counter()
                found += bool(decode(cam.capture_lores()))
                cam.stop()
                cold.append(time.perf_counter() - t0)
            out["frame_to_code_lores"] = {**_ms(cold), "read": f"{found}/{len(cold)}"}
            still = []
            for _ in range(3):
                t0 = time.perf_counter()
                jpeg = cam.capture_jpeg()
                import io
                with Image.open(io.BytesIO(jpeg)) as im:
                    im.draft("L", (im.width // 2, im.height // 2))
                    gray = np.asarray(im.convert("L"))
                decode(gray)
                cam.stop()
                still.append(time.perf_counter() - t0)
            out["frame_to_code_still"] = {**_ms(still), "frame": f"{gray.shape[1]}x{gray.shape[0]}"}
        finally:
            board.close()
    return out


def summary(r: dict) -> str:
    d, f, s = r["decode_lores"], r["frame_to_code_lores"], r["frame_to_code_still"]
    return (f"qr   decode {d['median_ms']:.1f} ms on {d['frame']} (zxing direct "
            f"{d['direct']['median_ms']:.1f} ms, ratio {d['ratio']:.2f}); frame to code "
            f"{f['median_ms']:.0f} ms lores ({f['read']} read), {s['median_ms']:.0f} ms from a "
            f"still decoded at {s['frame']}")

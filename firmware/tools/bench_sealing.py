"""What sealing costs: AES-256-GCM throughput, and a 30 s segment sealed against plain.

`python -m glasses_firmware.firmware.tools.bench_sealing [--runs N] [--dir DIR] [--json]` times, in one run
side by side on the same disk: seal and open of a 30 s meeting segment (16 kHz mono WAV,
960 KB) in memory, writing it plain (drivers/atomic.py: temp, fsync, rename, fsync dir)
against sealed (the same, plus the seal), reading it back plain against opened, and one
journal line sealed. Medians of `--runs`; the numbers are in docs/encryption.md.
"""

import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.atomic import write_atomic
from glasses_firmware.drivers.sealed import Sealer, read_file
from glasses_firmware.drivers.wavio import wav_bytes

RATE_HZ = 16000
SEGMENT_S = 30.0


def _median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench(runs: int = 30, directory: Path | None = None) -> dict:
    """Medians in ms (and MB/s for the in-memory seal and open); `directory`: where files go."""
    rng = np.random.default_rng(0)
    segment = wav_bytes(rng.uniform(-0.3, 0.3, (int(RATE_HZ * SEGMENT_S), 1)), RATE_HZ)
    big = rng.bytes(16 * 2**20)
    line = json.dumps({"start": 1.0, "end": 2.5, "text": "we decided to move the launch",
                       "embedding": [round(float(x), 4) for x in rng.normal(size=256)]}).encode()
    sealer = Sealer.ephemeral()
    name = "20260101-120000/seg-00001.wav"
    sealed_segment = sealer.seal(segment, name)
    sealed_big = sealer.seal(big, name)
    out = {"runs": runs, "segment_bytes": len(segment)}
    out["seal_segment_ms"] = _median_ms(lambda: sealer.seal(segment, name), runs)
    out["open_segment_ms"] = _median_ms(lambda: sealer.unseal(sealed_segment, name, "x"), runs)
    seal_big = _median_ms(lambda: sealer.seal(big, name), max(3, runs // 5))
    open_big = _median_ms(lambda: sealer.unseal(sealed_big, name, "x"), max(3, runs // 5))
    out["seal_mb_s"] = len(big) / 1e6 / (seal_big / 1000)
    out["open_mb_s"] = len(big) / 1e6 / (open_big / 1000)
    out["seal_line_us"] = _median_ms(lambda: sealer.seal_line(line, name), runs * 10) * 1000
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-sealing-") as tmp:
        d = Path(tmp) / "20260101-120000"
        plain, sealed = d / "plain.wav", d / "seg-00001.wav"
        # Interleaved, so a busy disk or CPU slows both alike.
        write_plain, write_sealed, read_plain, read_sealed = [], [], [], []
        for _ in range(runs):
            write_plain.append(_median_ms(lambda: write_atomic(plain, segment), 1))
            write_sealed.append(_median_ms(lambda: sealer.write(sealed, segment), 1))
            read_plain.append(_median_ms(lambda: plain.read_bytes(), 1))
            read_sealed.append(_median_ms(lambda: read_file(sealed, sealer), 1))
        assert read_file(sealed, sealer) == segment
    out["write_plain_ms"] = statistics.median(write_plain)
    out["write_sealed_ms"] = statistics.median(write_sealed)
    out["read_plain_ms"] = statistics.median(read_plain)
    out["read_sealed_ms"] = statistics.median(read_sealed)
    out["overhead_bytes"] = len(sealed_segment) - len(segment)
    return out


def summary(r: dict) -> str:
    return "\n".join([
        f"AES-256-GCM (cryptography), median of {r['runs']} runs:",
        f"  seal {r['seal_mb_s']:.0f} MB/s, open {r['open_mb_s']:.0f} MB/s (16 MiB in memory)",
        f"  30 s segment ({r['segment_bytes'] / 1e3:.0f} KB): seal {r['seal_segment_ms']:.2f} ms, "
        f"open {r['open_segment_ms']:.2f} ms; +{r['overhead_bytes']} bytes on disk",
        f"  write it (temp, fsync, rename, fsync dir): plain {r['write_plain_ms']:.2f} ms, "
        f"sealed {r['write_sealed_ms']:.2f} ms",
        f"  read it back: plain {r['read_plain_ms']:.2f} ms, opened {r['read_sealed_ms']:.2f} ms",
        f"  one journal line (an utterance with its voice embedding): {r['seal_line_us']:.0f} us"])


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--dir", type=Path, help="where the files are written (default: the temp dir)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = bench(a.runs, a.dir)
    print(json.dumps(result) if a.json else summary(result))

"""Calls and music latency on the sim board, through its console: `python -m glasses_firmware.firmware.tools.bench_calls`.

Starts `glasses run --board sim --models none` and, from the console as a wearer would,
times (wall clock, the console polled every 10 ms, so each figure is within about 10 ms):
- ring: the phone's incoming call placed on D-Bus (`sim phone call` answered) to
  `EVT call incoming`;
- answer: `call answer` (oFono's Answer and BlueALSA's two PCM opens) to its reply;
- gone: `sim phone off` mid-call (the modem removed) to `EVT call ended: the phone disconnected`;
- duck: `ask what time is it` to `EVT music ducked under speech` (speech synthesis included).
Prints the medians and maxima as JSON. Ring and gone are counted from the knob's reply,
which comes after the mock has sent its signal: near 0 means the event was already out.
"""

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from glasses_firmware.firmware.tools.simdriver import SimFirmware

ROUNDS = 5
POLL_S = 0.01


def _until(client, predicate, timeout_s: float = 20.0) -> float:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if any(predicate(e) for e in client.command("version", 10).events):
            return time.perf_counter()
        time.sleep(POLL_S)
    raise SystemExit("bench_calls: an expected event did not come within the deadline")


def _bench(client) -> dict:
    times: dict[str, list[float]] = {"ring_ms": [], "answer_ms": [], "gone_ms": [], "duck_ms": []}
    for i in range(ROUNDS):
        client.command(f"sim phone call Caller{i}", 30)
        t0 = time.perf_counter()
        times["ring_ms"].append((_until(client, lambda e: e.startswith("call incoming")) - t0) * 1000)
        t0 = time.perf_counter()
        client.command("call answer", 30)
        times["answer_ms"].append((time.perf_counter() - t0) * 1000)
        client.command("sim phone off", 30)
        t0 = time.perf_counter()
        times["gone_ms"].append((_until(client, lambda e: e.startswith("call ended")) - t0) * 1000)
        client.command("sim phone on", 30)
        while json.loads(client.command("call --json", 10).lines[0])["modems"] != 1:
            time.sleep(POLL_S)
    client.command('sim phone music play "Bench" "Mark"', 30)
    time.sleep(0.5)
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        client.command("ask what time is it", 30)
        times["duck_ms"].append((_until(client, lambda e: e == "music ducked under speech") - t0) * 1000)
        _until(client, lambda e: e == "music back up after speech")
    return {k: {"median": round(statistics.median(v), 1), "max": round(max(v), 1)}
            for k, v in times.items()}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fw = SimFirmware(Path(tmp) / "data", Path(tmp) / "tty", Path(tmp) / "firmware.log")
        try:
            fw.cmd("events on", 10)
            while fw.cmd("call --json", 10).json()["modems"] != 1:
                time.sleep(0.1)
            print(json.dumps(_bench(fw.client), indent=1))
        finally:
            fw.stop(timeout_s=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())

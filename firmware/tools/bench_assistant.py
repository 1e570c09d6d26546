"""`glasses bench`: the assistant's latency and the firmware's standby CPU.

Both run the real firmware in this process on the sim board (real time), with the
models of `--models`, and feed espeak-ng speech into the simulated microphones.

- assistant.first_audio_ms: from the end of the spoken question (its last voiced
  sample leaving the microphones) to the first sample of the answer queued to the
  speaker; with its stages. Median of a few turns, for a device command and for an
  open question that goes to the LLM.
- standby.cpu_ms_per_s: CPU time (firmware process + inference workers) per second of
  audio while listening for the wake word in a quiet room, against Silero VAD plus the
  wake-word model called directly on the same amount of audio on one thread;
  standby.speech_cpu_ms_per_s: the same while people talk nearby all the time (the VAD
  then keeps the wake-word model running: the worst case).
"""

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RUNS = 3
STANDBY_S = 20.0
TALK = ("So I told him the train was late again, and we ended up walking the whole way "
        "along the river, which was nice, but it started raining just before we got there.")


def _cpu_s(pid: int, skip_tids=()) -> float:
    """CPU time of a process's threads (scheduler's own count, ns precision), in seconds."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) in skip_tids:
            continue
        try:
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except OSError:
            pass              # the thread ended meanwhile
    return total / 1e9


def _sim_threads() -> set[int]:
    """The emulated hardware's threads (sound card, battery physics, wearer)."""
    import threading
    return {t.native_id for t in threading.enumerate() if t.name.startswith("sim-")}


def _speech(text: str) -> tuple[np.ndarray, float]:
    """espeak-ng speech at 16 kHz and the time of its last voiced sample."""
    from ..voice.cues import synthesize
    from glasses_firmware.drivers.resample import resample
    audio, rate = synthesize(text, "en", 165)
    mono = resample(audio[:, 0] if audio.ndim == 2 else audio, rate, 16000).astype(np.float32)
    frames = mono[: len(mono) // 160 * 160].reshape(-1, 160)
    energy = 10 * np.log10((frames.astype(np.float64) ** 2).mean(axis=1) + 1e-12)
    voiced = np.flatnonzero(energy > energy.max() - 35)
    return mono, (voiced[-1] + 1) * 160 / 16000


async def _turn(fw, audio: np.ndarray, voiced_end_s: float) -> dict:
    a = fw.assistant
    a.trigger("tap")             # from wake or the last follow-up window
    await asyncio.sleep(0.4)                       # the listening earcon, as a user waits for it
    start = time.perf_counter()
    fw.board.sim.audio_source.play_samples(audio, 16000)
    speech_end = start + voiced_end_s
    deadline = time.monotonic() + 60
    while a.speech.first_audio_at is None or "heard_at" not in a.last_timing:
        if time.monotonic() > deadline:
            raise TimeoutError("no answer within 60 s")
        await asyncio.sleep(0.005)
    t = dict(a.last_timing)
    out = {
        "first_audio_ms": (a.speech.first_audio_at - speech_end) * 1000,
        "endpoint": (t["heard_at"] - speech_end) * 1000,
        "recognize": t.get("recognize_ms", 0.0),
        "llm_first_token": t.get("llm_first_token_ms"),
        "tts_first_chunk": a.speech.first_synth_ms,
        "speculation_used": a.recognizer.speculation_used,
        "speculation_wasted": a.recognizer.speculation_wasted,
    }
    while a.turn is not None and not a.turn.done():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return out


def _median(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {k: (round(statistics.median(r[k] for r in rows), 1)
                if rows[0][k] is not None else None) for k in keys}


def _direct_cpu_ms_per_s(m, vad_fn, wake_fn) -> float:
    """CPU (not wall) time of VAD + wake word called directly, per second of audio.

    Each is run on 2 s and on 20 s of audio; the difference cancels loading and warm-up.
    """
    rng = np.random.default_rng(0)

    def cpu(seconds: float) -> float:
        audio = rng.normal(0, 3e-4, int(seconds * 16000)).astype(np.float32)
        t = time.process_time()
        vad_fn(m, audio)
        wake_fn(m, audio, ("hey_jarvis",))
        return time.process_time() - t

    short, long = cpu(2.0), cpu(20.0)
    return (long - short) * 1000 / 18.0


async def _measure(models_dir: Path) -> dict:
    from glasses_firmware import boards
    from glasses_firmware.drivers.clock import SimClock

    from ..app import Firmware
    from .bench_direct import direct_vad_ms_per_s, direct_wake_ms_per_s
    from glasses_firmware.models import manifest
    config = boards.load("sim")
    with tempfile.TemporaryDirectory(prefix="glasses-bench-") as tmp:
        fw = Firmware(config, Path(tmp), SimClock(realtime=True), models_dir=models_dir)
        sampler = asyncio.create_task(fw.sample_forever())
        try:
            await fw.start_workers()
            await asyncio.sleep(2.0)               # listener and worker settle
            result = {}
            for kind, text in (("command", "what's the battery"), ("llm", "why is the sky blue")):
                audio, end_s = _speech(text)
                rows = [await _turn(fw, audio, end_s) for _ in range(RUNS)]
                result[kind] = _median(rows)
            # Standby: only the wake-word listener runs.
            await asyncio.sleep(1.0)
            pids = [os.getpid(), fw.voice_worker.worker_pid, fw.model_worker.worker_pid]
            sim = _sim_threads()
            before, t0 = [_cpu_s(p, sim) for p in pids], time.monotonic()
            sim0 = _cpu_s(os.getpid()) - before[0]
            await asyncio.sleep(STANDBY_S)
            after, t1 = [_cpu_s(p, sim) for p in pids], time.monotonic()
            sim1 = _cpu_s(os.getpid()) - after[0]
            # The worst case: people talking all the time (not to the glasses), so the
            # VAD keeps the wake-word model running.
            talk, _ = _speech(TALK)
            fw.board.sim.audio_source.play_samples(np.tile(talk, 4), 16000)
            turns0 = fw.assistant.turns
            busy0, tb0 = [_cpu_s(p, sim) for p in pids], time.monotonic()
            await asyncio.sleep(STANDBY_S)
            busy1, tb1 = [_cpu_s(p, sim) for p in pids], time.monotonic()
            false_wakes = fw.assistant.turns - turns0
            speech_by_process = [(b - a) * 1000 / (tb1 - tb0) for a, b in zip(busy0, busy1)]
            fw.board.sim.audio_source.clear()
        finally:
            sampler.cancel()
            await fw.shutdown()
    audio_s = t1 - t0
    direct = _direct_cpu_ms_per_s(manifest.load(models_dir), direct_vad_ms_per_s, direct_wake_ms_per_s)
    per_process = [(b - a) * 1000 / audio_s for a, b in zip(before, after)]
    firmware_ms = sum(per_process)
    speech_ms = sum(b - a for a, b in zip(busy0, busy1)) * 1000 / (tb1 - tb0)
    cmd, llm = result["command"], result["llm"]
    return {
        "assistant": {"first_audio_ms": llm["first_audio_ms"],
                      "command_first_audio_ms": cmd["first_audio_ms"],
                      "stages_ms": {k: llm[k] for k in ("endpoint", "recognize", "llm_first_token",
                                                        "tts_first_chunk")},
                      "command_stages_ms": {k: cmd[k] for k in ("endpoint", "recognize",
                                                                "tts_first_chunk")},
                      "runs": RUNS},
        "standby": {"cpu_ms_per_s": round(firmware_ms, 1), "direct_cpu_ms_per_s": round(direct, 1),
                    "ratio": round(firmware_ms / direct, 2), "seconds": round(audio_s, 1),
                    "speech_cpu_ms_per_s": round(speech_ms, 1),
                    "speech_ratio": round(speech_ms / direct, 2),
                    "speech_by_process_ms_per_s": [round(x, 1) for x in speech_by_process],
                    "speech_false_wakes": false_wakes,
                    "by_process_ms_per_s": {"firmware": round(per_process[0], 1),
                                            "voice_worker": round(per_process[1], 1),
                                            "model_worker": round(per_process[2], 1)},
                    # Not counted above: the sim's emulated sound card and battery
                    # threads, which stand in for hardware (DMA, the gauge's own chip).
                    "sim_hardware_ms_per_s": round((sim1 - sim0) * 1000 / audio_s, 1)},
    }


def measure(models_dir: Path) -> dict:
    return asyncio.run(_measure(Path(models_dir)))


if __name__ == "__main__":
    import json
    import sys
    print(json.dumps(measure(Path(sys.argv[1]))))

"""The libraries called directly in this process: the floor each worker figure is compared with.

Used by bench.py (the worker's overhead per request) and bench_assistant.py (standby
listening's CPU against the same work done directly); kept apart so that neither imports
the other.
"""

import time

import numpy as np

VAD_CHUNK = 512      # 32 ms: the shortest request the firmware sends
WAKE_CHUNK = 1280    # 80 ms


def direct_vad_ms_per_s(m, audio: np.ndarray) -> float:
    """Silero VAD via onnxruntime in this process, one thread, the same 32 ms chunks."""
    from glasses_firmware.models.verify import verify_entry
    from ..worker.vad import Vad
    vad = Vad(verify_entry(m, m.for_role("vad")), 1)
    vad.probabilities(audio[:16000])
    vad.reset()
    t0 = time.perf_counter()
    for i in range(0, len(audio), VAD_CHUNK):
        vad.probabilities(audio[i:i + VAD_CHUNK], reset=False)
    return (time.perf_counter() - t0) * 1000 / (len(audio) / 16000)


def direct_wake_ms_per_s(m, audio: np.ndarray, words) -> float:
    """pyopen-wakeword's own classes in this process (TFLite, one thread), 80 ms chunks."""
    from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures

    from ..worker.tflite_threads import limit_threads
    limit_threads(1)
    from glasses_firmware.models.verify import verify_entry
    files = {p.stem: p for p in verify_entry(m, m.for_role("wake"))}
    features = OpenWakeWordFeatures.from_builtin(files["melspectrogram"].parent)
    models = [OpenWakeWord.from_model(files[w]) for w in words]
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)

    def feed(samples):
        for i in range(0, len(samples) - WAKE_CHUNK + 1, WAKE_CHUNK):
            for emb in features.process_streaming(samples[i:i + WAKE_CHUNK].tobytes()):
                for model in models:
                    for _ in model.process_streaming(emb):
                        pass
    feed(pcm[:16000])
    t0 = time.perf_counter()
    feed(pcm)
    return (time.perf_counter() - t0) * 1000 / (len(audio) / 16000)

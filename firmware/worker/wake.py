"""Wake word: openWakeWord models shipped in the pyopen-wakeword wheel (TFLite runtime)."""

import numpy as np

CHUNK = 1280  # 80 ms at 16 kHz, the feature extractor's step


class Wake:
    """Highest wake-word probability per model over a stretch of 16 kHz audio."""

    def __init__(self, files, threads: int):
        from pyopen_wakeword import OpenWakeWord, OpenWakeWordFeatures
        self.features = OpenWakeWordFeatures.from_builtin()
        names = [p.stem for p in files if p.suffix == ".tflite"
                 and p.stem not in ("melspectrogram", "embedding_model")]
        self.models = {n: OpenWakeWord.from_model(p) for n, p in
                       ((p.stem, p) for p in files) if n in names}

    def scores(self, audio: np.ndarray, reset: bool = False) -> dict[str, float]:
        if reset:
            self.features.reset()
            for m in self.models.values():
                m.reset()
        pcm = (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767).astype(np.int16)
        best = {n: 0.0 for n in self.models}
        for i in range(0, len(pcm) - CHUNK + 1, CHUNK):
            for emb in self.features.process_streaming(pcm[i:i + CHUNK].tobytes()):
                for name, model in self.models.items():
                    for p in model.process_streaming(emb):
                        best[name] = max(best[name], float(p))
        return best

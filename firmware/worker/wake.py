"""Wake word: openWakeWord models shipped in the pyopen-wakeword wheel (TFLite runtime).

Only the wake words asked for are loaded and run: the feature extractor (melspectrogram
and embedding) is shared, and each word's classifier costs extra per 80 ms step. The
stream carries over between calls, so the firmware can send consecutive 80 ms chunks: the
features keep their 8 s window and samples short of a whole step wait for the next call.
"""

import numpy as np

from glasses_firmware.drivers.errors import GlassesError

CHUNK = 1280  # 80 ms at 16 kHz, the feature extractor's step
FEATURE_MODELS = ("melspectrogram", "embedding_model")
DEFAULT_WORDS = ("hey_jarvis",)   # the product's wake word


class WakeWordError(GlassesError, ValueError):
    """A wake word was asked for that the manifest's wake model does not ship."""


class Wake:
    """Highest probability per selected wake word over each stretch of 16 kHz audio."""

    def __init__(self, files, threads: int, words=DEFAULT_WORDS):
        from pyopen_wakeword import OpenWakeWordFeatures

        from .tflite_threads import limit_threads
        limit_threads(threads)
        by_stem = {p.stem: p for p in files if p.suffix == ".tflite"}
        self.paths = {n: p for n, p in by_stem.items() if n not in FEATURE_MODELS}
        self.features = OpenWakeWordFeatures.from_builtin(by_stem["melspectrogram"].parent)
        self.models: dict = {}
        self.fed: dict[str, int] = {}   # per word: the feature step it has seen up to
        self.step = 0                   # embeddings produced since the last reset
        self.pending = np.zeros(0, np.int16)
        for word in words:
            self._model(word)

    def _model(self, word: str):
        if word not in self.models:
            from pyopen_wakeword import OpenWakeWord
            if word not in self.paths:
                raise WakeWordError(f"wake word {word!r} is not one of the wake model's words "
                                    f"({', '.join(sorted(self.paths))}); add its .tflite file "
                                    "to the manifest's wake entry")
            self.models[word] = OpenWakeWord.from_model(self.paths[word])
            self.fed[word] = self.step
        return self.models[word]

    def reset(self) -> None:
        """Forget the audio heard so far (refills the feature window with 8 s of silence)."""
        self.features.reset()
        for m in self.models.values():
            m.reset()
        self.step = 0
        self.fed = {w: 0 for w in self.models}
        self.pending = np.zeros(0, np.int16)

    def scores(self, audio: np.ndarray, reset: bool = False, words=None) -> dict[str, float]:
        """{word: highest probability over the 80 ms steps this audio completes}.

        `words` (default: the words loaded at start) are loaded on first use; a word that
        missed some audio since it last ran starts its window afresh.
        """
        if reset:
            self.reset()
        words = tuple(words) if words else tuple(self.models)
        models = {w: self._model(w) for w in words}
        for w, m in models.items():
            if self.fed[w] != self.step:
                m.reset()   # it skipped embeddings: its window would splice two stretches
        pcm = (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767).astype(np.int16)
        if len(self.pending):
            pcm = np.concatenate([self.pending, pcm])
        whole = len(pcm) - len(pcm) % CHUNK
        self.pending = pcm[whole:].copy()
        best = {w: 0.0 for w in models}
        for i in range(0, whole, CHUNK):  # one step at a time: the window holds only 10 s
            for emb in self.features.process_streaming(pcm[i:i + CHUNK].tobytes()):
                self.step += 1
                for w, m in models.items():
                    for p in m.process_streaming(emb):
                        if p > best[w]:
                            best[w] = float(p)
        for w in models:
            self.fed[w] = self.step
        return best

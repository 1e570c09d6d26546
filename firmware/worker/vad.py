"""Voice activity: Silero VAD (ONNX) taken from the silero-vad wheel, run by onnxruntime."""

import numpy as np

from .sessions import make_session

CHUNK = 512      # samples per decision at 16 kHz (32 ms)
CONTEXT = 64     # samples of the previous chunk the model sees in front of each chunk
RATE_HZ = 16000


class Vad:
    """Speech probability per 32 ms chunk of 16 kHz mono float32 audio."""

    def __init__(self, files, threads: int):
        onnx_path = next(p for p in files if p.name == "silero_vad.onnx")
        self.session = make_session(onnx_path, 1)  # 4 ms per second of audio: one thread is plenty
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)

    def probabilities(self, audio: np.ndarray, reset: bool = True) -> np.ndarray:
        if reset:
            self.reset()
        audio = np.asarray(audio, np.float32).reshape(-1)
        n = len(audio) // CHUNK
        out = np.empty(n, np.float32)
        sr = np.array(RATE_HZ, np.int64)
        for i in range(n):
            chunk = audio[i * CHUNK:(i + 1) * CHUNK][None, :]
            x = np.concatenate([self.context, chunk], axis=1)
            prob, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": sr})
            self.context = chunk[:, -CONTEXT:]
            out[i] = float(prob.reshape(-1)[0])
        return out

"""Voice activity: Silero VAD (ONNX) taken from the silero-vad wheel, run by onnxruntime.

The model is recurrent: its state, the last 64 samples, and samples short of a whole
32 ms chunk carry over between calls, so consecutive chunks of a stream can be sent as
they arrive (any length); `reset` starts a new stream.
"""

import numpy as np

from .sessions import make_session

CHUNK = 512      # samples per decision at 16 kHz (32 ms)
CONTEXT = 64     # samples of the previous chunk the model sees in front of each chunk
RATE_HZ = 16000


class Vad:
    """Speech probability per 32 ms chunk of 16 kHz mono float32 audio."""

    def __init__(self, files, threads: int):
        onnx_path = next(p for p in files if p.name == "silero_vad.onnx")
        self.session = make_session(onnx_path, 1)  # a few ms per second of audio: one thread
        self.sr = np.array(RATE_HZ, np.int64)
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)
        self.pending = np.zeros(0, np.float32)

    def probabilities(self, audio: np.ndarray, reset: bool = True) -> np.ndarray:
        """One probability per whole 32 ms chunk completed by this audio (and any carry)."""
        if reset:
            self.reset()
        audio = np.asarray(audio, np.float32).reshape(-1)
        if len(self.pending):
            audio = np.concatenate([self.pending, audio])
        n = len(audio) // CHUNK
        self.pending = audio[n * CHUNK:].copy()
        out = np.empty(n, np.float32)
        x = np.empty((1, CONTEXT + CHUNK), np.float32)
        for i in range(n):
            x[0, :CONTEXT] = self.context
            x[0, CONTEXT:] = audio[i * CHUNK:(i + 1) * CHUNK]
            prob, self.state = self.session.run(None, {"input": x, "state": self.state,
                                                       "sr": self.sr})
            self.context = x[:, -CONTEXT:].copy()
            out[i] = float(prob.reshape(-1)[0])
        return out

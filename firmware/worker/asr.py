"""Speech recognition: an ONNX encoder-decoder (Moonshine/Whisper class), greedy decoding.

The decoder is run on the whole token prefix each step (no KV cache): fine for the tiny
test model and for short utterances; a cached decoder input is the next step for the
production model.
"""

import numpy as np

from .sessions import make_session

FRAME_SAMPLES = 320
START_ID, END_ID = 1, 2
MAX_TOKENS_PER_S = 6.5   # speech rarely exceeds this many tokens per second


class Asr:
    """Transcribe 16 kHz mono float32 audio; `stream` yields the text so far per token."""

    def __init__(self, files, threads: int):
        from tokenizers import Tokenizer
        by_name = {p.name: p for p in files}
        self.encoder = make_session(by_name["encoder.onnx"], threads)
        self.decoder = make_session(by_name["decoder.onnx"], threads)
        self.tokenizer = Tokenizer.from_file(str(by_name["tokenizer.json"]))

    def stream(self, audio: np.ndarray):
        audio = np.asarray(audio, np.float32).reshape(-1)
        pad = (-len(audio)) % FRAME_SAMPLES
        audio = np.concatenate([audio, np.zeros(max(pad, 0), np.float32)])
        if len(audio) == 0:
            return
        hidden = self.encoder.run(None, {"input_values": audio[None, :]})[0]
        ids = [START_ID]
        limit = int(len(audio) / 16000 * MAX_TOKENS_PER_S) + 4
        for _ in range(limit):
            logits = self.decoder.run(None, {"input_ids": np.array([ids], np.int64),
                                             "encoder_hidden_states": hidden})[0]
            nxt = int(np.argmax(logits[0, -1]))
            if nxt == END_ID:
                break
            ids.append(nxt)
            yield self.tokenizer.decode(ids[1:])

"""The roles the worker serves, each loaded on first use from the model the manifest names.

Loading verifies the model's files (missing: the error names the fetch command; wrong
hash: it names the file and both hashes). `serve` turns a request into a stream of
("item", partial) and one ("result", value).
"""

import time

import numpy as np

from glasses_firmware.drivers.errors import ConfigError
from glasses_firmware.models import manifest as manifest_mod
from glasses_firmware.models.verify import verify_entry

from . import protocol as P
from .asr import Asr
from .grammar import Grammar
from .llm import Llm
from .ocr import Ocr
from .voiceprint import VoicePrint
from .tts import EspeakTts, Tts
from .vad import Vad
from .wake import Wake

ROLE_CLASSES = {"vad": Vad, "wake": Wake, "grammar": Grammar, "asr": Asr, "llm": Llm,
                "tts": Tts, "ocr": Ocr, "speaker": VoicePrint}
KIND_ROLE = {"generate": "llm", "transcribe": "asr", "vad": "vad", "wake": "wake",
             "grammar": "grammar", "tts": "tts", "ocr": "ocr", "embed_speaker": "speaker"}


class Roles:
    """`options` maps a role to keyword arguments of its class, e.g. {"wake": {"words": [..]}};
    a role's "threads" there overrides the worker's (the voice worker's TTS wants two).

    The main compute thread loads the heavy roles and the light one loads VAD and wake
    word (see process.py), so two threads never load the same role.
    """

    def __init__(self, models_dir, threads: int, options: dict | None = None):
        self.models_dir = models_dir
        self.threads = threads
        self.options = dict(options or {})
        self.loaded: dict[str, object] = {}
        self.manifest = manifest_mod.load(models_dir)

    def get(self, role: str):
        if role not in self.loaded:
            entry = self.manifest.for_role(role)
            try:
                files = verify_entry(self.manifest, entry)
            except (FileNotFoundError, ConfigError):
                if role != "tts":
                    raise
                self.loaded[role] = EspeakTts()  # no voice installed: espeak-ng speaks
                return self.loaded[role]
            options = dict(self.options.get(role, {}))
            threads = int(options.pop("threads", self.threads))   # a role may want more
            self.loaded[role] = ROLE_CLASSES[role](files, threads, **options)
        return self.loaded[role]

    def serve(self, req: P.Request, should_stop):
        a = req.args
        tensors = {k: P.fetch(t) for k, t in req.tensors.items()}
        if req.kind == "ping":
            yield "result", {"pid_time": time.monotonic(), "loaded": sorted(self.loaded)}
            return
        role = self.get(KIND_ROLE[req.kind])
        if req.kind == "generate":
            n = 0
            for piece, _ in role.generate(a["messages"], int(a.get("max_tokens", 256)), should_stop):
                n += 1
                yield "item", piece
            yield "result", {"tokens": n, **role.info()}
        elif req.kind == "transcribe":
            # {"text", "language", "language_prob"}: the stream's return value.
            result = yield from _items(role.stream(
                tensors["audio"], str(a.get("task", "transcribe")), a.get("language"),
                should_stop))
            if should_stop():
                return
            yield "result", result
        elif req.kind == "vad":
            # A stream: state carries over between requests unless the caller resets it.
            probs = role.probabilities(tensors["audio"], bool(a.get("reset", False)))
            yield "result", {"probabilities": probs.tolist()}
        elif req.kind == "wake":
            # Resetting refills the feature window with 8 s of silence: only on request.
            yield "result", {"scores": role.scores(tensors["audio"], bool(a.get("reset", False)),
                                                   a.get("models"))}
        elif req.kind == "grammar":
            yield "result", role.recognise(tensors["audio"], list(a["phrases"]))
        elif req.kind == "tts":
            audio, rate = role.speak(str(a["text"]))
            shm, ref = P.share(np.asarray(audio, np.float32))
            shm.close()  # the client copies it out and unlinks it
            yield "result", {"audio": ref.to_json(), "rate_hz": rate}
        elif req.kind == "ocr":
            yield "result", {"lines": role.read(tensors["image"])}
        elif req.kind == "embed_speaker":
            # 256 floats: JSON carries float32 values exactly (through float64).
            yield "result", {"embedding": role.embed(tensors["audio"]).tolist()}


def _items(stream):
    """Pass a generator's values on as ("item", value); return the generator's return value."""
    while True:
        try:
            value = next(stream)
        except StopIteration as end:
            return end.value
        yield "item", value

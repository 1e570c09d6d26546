"""Device commands: a PocketSphinx JSGF grammar over the phrases the firmware asks for.

The grammar has no rejection of its own: the caller gets the hypothesis score and
decides (the score separated commands from other speech in our measurements).
"""

import hashlib
import re

import numpy as np

from drivers.errors import GlassesError


class CommandError(GlassesError, ValueError):
    """A command phrase uses a word the pronunciation dictionary does not know."""


class Commands:
    """Recognise one of a list of phrases in 16 kHz mono audio."""

    def __init__(self, files, threads: int):
        from pocketsphinx import Decoder
        hmm = next(p for p in files if p.name == "mdef").parent
        dic = next(p for p in files if p.suffix == ".dict")
        self.decoder = Decoder(hmm=str(hmm), dict=str(dic), lm=None, samprate=16000,
                               loglevel="FATAL")
        self.searches: dict[str, str] = {}

    def _search_for(self, phrases: list[str]) -> str:
        key = hashlib.sha1("\n".join(phrases).encode()).hexdigest()[:12]
        name = f"g{key}"
        if name not in self.searches:
            words = []
            for phrase in phrases:
                clean = re.sub(r"[^a-z' ]", " ", phrase.lower()).split()
                for w in clean:
                    if self.decoder.lookup_word(w) is None:
                        raise CommandError(f"command word {w!r} (in {phrase!r}) is not in the "
                                           "pronunciation dictionary; rephrase the command")
                words.append(" ".join(clean))
            jsgf = ("#JSGF V1.0;\ngrammar commands;\npublic <command> = "
                    + " | ".join(f"( {w} )" for w in words) + ";\n")
            self.decoder.add_jsgf_string(name, jsgf)
            self.searches[name] = jsgf
        return name

    def recognise(self, audio: np.ndarray, phrases: list[str]) -> dict:
        self.decoder.activate_search(self._search_for(phrases))
        pcm = (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        if hyp is None:
            return {"text": "", "score": None}
        return {"text": hyp.hypstr, "score": int(hyp.score)}

"""The command grammar: a PocketSphinx JSGF grammar over the phrases the firmware asks for.

The grammar has no rejection of its own: the caller gets the hypothesis score and
decides (the score separated commands from other speech in our measurements).
"""

import hashlib
import re

import numpy as np

from glasses_firmware.drivers.errors import GlassesError


MARGIN_S = 0.3
FLOOR_RMS = 3e-4      # -70 dBFS: a room's noise floor


def _trim(audio: np.ndarray, rate_hz: int = 16000) -> np.ndarray:
    """Speech with 0.3 s either side, on a steady noise floor.

    Measured on espeak-ng commands: long or digitally silent lead-ins throw the
    decoder's cepstral mean off (11 of 14 phrases recognised with this, 4-9 without).
    """
    hop = rate_hz // 100
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop).astype(np.float64)
    if not len(frames):
        return audio
    energy_db = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    voiced = np.flatnonzero(energy_db > energy_db.max() - 35)
    margin = int(MARGIN_S * rate_hz)
    start = max(0, voiced[0] * hop - margin)
    end = min(len(audio), (voiced[-1] + 1) * hop + margin)
    speech = audio[start:end]
    pad_before, pad_after = margin - (voiced[0] * hop - start), margin - (end - (voiced[-1] + 1) * hop)
    speech = np.concatenate([np.zeros(max(0, pad_before), np.float32), speech,
                             np.zeros(max(0, pad_after), np.float32)])
    noise = np.random.default_rng(0).normal(0, FLOOR_RMS, len(speech)).astype(np.float32)
    return speech + noise


class GrammarError(GlassesError, ValueError):
    """A command phrase uses a word the pronunciation dictionary does not know."""


class Grammar:
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
                        raise GrammarError(f"command word {w!r} (in {phrase!r}) is not in the "
                                           "pronunciation dictionary; rephrase the command")
                words.append(" ".join(clean))
            jsgf = ("#JSGF V1.0;\ngrammar commands;\npublic <command> = "
                    + " | ".join(f"( {w} )" for w in words) + ";\n")
            self.decoder.add_jsgf_string(name, jsgf)
            self.searches[name] = jsgf
        return name

    def recognise(self, audio: np.ndarray, phrases: list[str]) -> dict:
        self.decoder.activate_search(self._search_for(phrases))
        audio = _trim(np.asarray(audio, np.float32).reshape(-1))
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return {"text": "", "score": None, "coverage": 0.0}
        return {"text": hyp.hypstr, "score": int(hyp.score), "coverage": self._coverage(pcm)}

    def _coverage(self, pcm: np.ndarray) -> float:
        """Share of the voiced 10 ms frames that the matched words account for.

        A grammar maps any speech to some phrase (pocketsphinx 5 reports no usable score
        for grammar searches); a sentence forced onto a short command leaves most of its
        voiced frames outside the matched words, which is what this measures.
        """
        segs = self.decoder.seg() or []
        word_frames = sum(s.end_frame - s.start_frame + 1 for s in segs
                          if not s.word.startswith(("<", "[", "(")))
        frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
        energy_db = 10 * np.log10((frames ** 2).mean(axis=1) + 1.0)
        voiced = int((energy_db > energy_db.max() - 30).sum()) if len(energy_db) else 0
        return round(word_frames / voiced, 3) if voiced else 0.0

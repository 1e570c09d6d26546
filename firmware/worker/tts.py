"""Speech synthesis: a Piper voice (VITS, ONNX) on onnxruntime; espeak-ng when none is installed.

A Piper voice is `voice.onnx` + `voice.onnx.json` (sample rate, phoneme-id map, espeak
voice, inference scales). Voices with `phoneme_type = "espeak"` are phonemized by the
espeak-ng program (a subprocess, never the GPL piper-phonemize library): `espeak-ng -q
-v VOICE --ipa` per clause, because the CLI drops punctuation and the voice was trained
with it. The clause's punctuation mark is put back after its phonemes, clauses are joined
with a space and the string NFD-normalised, as Piper's training did. Ids are `^ _`, then
every codepoint's id followed by `_`, then `$` (the pad after the start mark is what
piper-phonemize produced for training). The tiny test voice has `phoneme_type = "text"`:
its map is over letters.

Long text is synthesised in runs of at most MAX_IDS_PER_RUN ids, cut at clause (or word)
boundaries, and the audio joined: speaking sentence by sentence is the caller's job, but
a long paragraph must not fail or stall the voice.
"""

import io
import json
import logging
import re
import shutil
import subprocess
import time
import unicodedata
import wave

import numpy as np

from glasses_firmware.drivers.errors import ConfigError, GlassesError

from .sessions import make_session

log = logging.getLogger("glasses.worker")

ESPEAK_TIMEOUT_S = 20          # one espeak-ng run (a clause takes ~10 ms, a page ~1 s)
MAX_IDS_PER_RUN = 400          # about 10 s of speech; Piper was trained on sentences
PHONEME_TYPES = ("espeak", "text")
# A clause ends at punctuation followed by a space or the end ("3.5" and "e.g" stay whole).
CLAUSE_END = re.compile(r"([.,!?;:]+)(?=\s|$)")
BOS, EOS, PAD = "^", "$", "_"


class TtsError(GlassesError, RuntimeError):
    """Neither a voice model nor espeak-ng could speak the text; says why."""


class Tts:
    """Text to float32 mono audio at `rate_hz` with a Piper voice."""

    def __init__(self, files, threads: int):
        by_name = {p.name: p for p in files}
        for name in ("voice.onnx", "voice.onnx.json"):
            if name not in by_name:
                raise ConfigError(f"the TTS model's manifest entry lacks {name}")
        self.session = make_session(by_name["voice.onnx"], threads)
        self.config = json.loads(by_name["voice.onnx.json"].read_text(encoding="utf-8"))
        self.rate_hz = int(self.config["audio"]["sample_rate"])
        self.id_map: dict[str, list[int]] = self.config["phoneme_id_map"]
        for mark in (BOS, EOS, PAD):
            if mark not in self.id_map:
                raise ConfigError(f"voice.onnx.json's phoneme_id_map has no {mark!r}")
        self.phoneme_type = self.config.get("phoneme_type", "espeak")
        if self.phoneme_type not in PHONEME_TYPES:
            raise ConfigError(f"voice phoneme_type {self.phoneme_type!r} is not supported "
                              f"(only {', '.join(PHONEME_TYPES)})")
        self.espeak_voice = self.config.get("espeak", {}).get("voice", "en-us")
        if self.phoneme_type == "espeak" and shutil.which("espeak-ng") is None:
            raise TtsError("the Piper voice needs espeak-ng for its phonemes; "
                           "install it with `apt-get install espeak-ng`")
        inf = self.config.get("inference", {})
        self.scales = np.array([inf.get("noise_scale", 0.667), inf.get("length_scale", 1.0),
                                inf.get("noise_w", 0.8)], np.float32)
        # Multi-speaker voices take a speaker id; the first speaker is the default.
        self.has_sid = any(i.name == "sid" for i in self.session.get_inputs())
        self.missing: dict[str, int] = {}   # codepoints the map lacks -> times skipped

    def phonemes(self, text: str) -> list[str]:
        """The phoneme string of each clause, punctuation re-attached, NFD-normalised."""
        if self.phoneme_type == "text":
            letters = unicodedata.normalize("NFD", " ".join(text.lower().split()))
            return [letters] if letters else []
        out = []
        for words, mark in _clauses(text):
            ipa = _espeak(["-q", "-v", self.espeak_voice, "--ipa"], words,
                          time.monotonic() + ESPEAK_TIMEOUT_S)
            lines = [line.strip() for line in ipa.decode("utf-8", "replace").splitlines()]
            phonemes = " ".join(line for line in lines if line)
            if phonemes:
                out.append(unicodedata.normalize("NFD", phonemes + mark[:1]))
        return out

    def ids(self, phonemes: str) -> list[int]:
        """Piper's ids for one run: ^ _ (id _)... $; codepoints the map lacks are skipped."""
        pad = self.id_map[PAD]
        ids = self.id_map[BOS] + pad
        new = set()
        for ch in phonemes:
            if ch not in self.id_map:
                if ch not in self.missing:
                    new.add(ch)
                self.missing[ch] = self.missing.get(ch, 0) + 1
                continue
            ids += self.id_map[ch] + pad
        if new:   # once per codepoint, not per sentence: a voice lacking one would flood the log
            log.warning("TTS voice has no id for %s; skipped", ", ".join(
                f"{c!r} (U+{ord(c):04X})" for c in sorted(new)))
        return ids + self.id_map[EOS]

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        """(float32 mono audio, sample rate in Hz); empty text gives no samples."""
        runs = _runs(self.phonemes(text), MAX_IDS_PER_RUN // 2)
        pieces = [self._synthesize(self.ids(run)) for run in runs]
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return audio, self.rate_hz

    def _synthesize(self, ids: list[int]) -> np.ndarray:
        feeds = {"input": np.array([ids], np.int64),
                 "input_lengths": np.array([len(ids)], np.int64), "scales": self.scales}
        if self.has_sid:
            feeds["sid"] = np.array([0], np.int64)
        return self.session.run(None, feeds)[0].reshape(-1).astype(np.float32)


def _clauses(text: str) -> list[tuple[str, str]]:
    """(words, punctuation) pairs; the words are one line, the punctuation may be ""."""
    parts = CLAUSE_END.split(text)
    pairs = zip(parts[0::2], parts[1::2] + [""])
    return [(" ".join(words.split()), mark) for words, mark in pairs if words.strip()]


def _runs(clauses: list[str], max_chars: int) -> list[str]:
    """Clauses joined with spaces into runs of at most `max_chars` phoneme codepoints.

    A run's ids are about twice its codepoints (each is followed by a pad). A clause
    longer than a run on its own is cut between words.
    """
    words = []
    for clause in clauses:
        words += clause.split(" ") if len(clause) > max_chars else [clause]
    runs: list[str] = []
    for w in words:
        if runs and len(runs[-1]) + 1 + len(w) <= max_chars:
            runs[-1] += " " + w
        else:
            runs.append(w)
    return runs


class EspeakTts:
    """The fallback voice: espeak-ng's own synthesiser, as WAV on stdout."""

    def __init__(self, voice: str = "en-us"):
        if shutil.which("espeak-ng") is None:
            raise TtsError("no TTS voice model is installed and espeak-ng is missing; "
                           "install it with `apt-get install espeak-ng`")
        self.voice = voice

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        data = _espeak(["-v", self.voice, "--stdout"], text,
                       time.monotonic() + ESPEAK_TIMEOUT_S)
        with wave.open(io.BytesIO(data)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return (pcm.astype(np.float32) / 32768.0), rate


def _espeak(args: list[str], text: str, deadline: float) -> bytes:
    """espeak-ng's stdout for `text` (given on stdin, so a leading "-" is not an option)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TtsError(f"espeak-ng took longer than {ESPEAK_TIMEOUT_S} s")
    try:
        proc = subprocess.run(["espeak-ng", *args], input=text.encode("utf-8"),
                              capture_output=True, timeout=left)
    except subprocess.TimeoutExpired:
        raise TtsError(f"espeak-ng took longer than {ESPEAK_TIMEOUT_S} s") from None
    except OSError as e:
        raise TtsError(f"espeak-ng failed: {e}") from None
    if proc.returncode != 0:
        raise TtsError(f"espeak-ng exited {proc.returncode}: {proc.stderr.decode()[-200:]}")
    return proc.stdout

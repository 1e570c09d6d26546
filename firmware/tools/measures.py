"""What the quality runs measure with: word error rate and synthetic speech.

Shared by quality.py and its meeting and translation parts (quality_meeting.py,
quality_translate.py), which quality.py runs: kept apart so those parts need not import
the runner that imports them.
"""

import re
import unicodedata

import numpy as np


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _spelled(n: int) -> str:
    """0-99 in words: Whisper writes "10" where the sentence says "ten"; neither is wrong."""
    if n < 20:
        return _ONES[n]
    return _TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + _ONES[n % 10])


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"\b\d{1,2}\b", lambda m: _spelled(int(m.group())), text)
    return re.sub(r"[^\w' ]", " ", text).split()


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)) / max(1, len(ref))


def speech(text: str, voice: str, wpm: int, snr_db: float | None, seed: int = 0) -> np.ndarray:
    """espeak-ng speech at 16 kHz mono, with white noise at `snr_db` over the voiced part."""
    from glasses_firmware.drivers.resample import resample

    from ..voice.cues import synthesize_voice
    audio, rate = synthesize_voice(text, voice, wpm)
    x = resample(audio[:, 0] if audio.ndim == 2 else audio, rate, 16000).astype(np.float32)
    x = np.concatenate([np.zeros(4000, np.float32), x, np.zeros(4000, np.float32)])
    if snr_db is not None:
        voiced = x[np.abs(x) > 0.02 * np.abs(x).max()]
        power = float(np.mean(voiced.astype(np.float64) ** 2))
        noise = np.random.default_rng(seed).normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
        x = (x + noise).astype(np.float32)
    return x

"""Meeting audio to utterances: where speech starts and ends, from per-chunk speech odds.

The odds come from Silero VAD (one per 512 samples, 32 ms) or, without a model, from the
energy of each chunk. A pause of `split_silence_s` ends an utterance: short, because a
reply often follows within a few hundred milliseconds and one utterance gets one speaker.
"""

from dataclasses import dataclass

import numpy as np

RATE_HZ = 16000
CHUNK = 512


@dataclass(frozen=True)
class SplitSettings:
    speech_prob: float = 0.5          # a chunk this likely to be speech starts an utterance
    keep_prob: float = 0.35           # ...and it goes on while chunks stay above this
    split_silence_s: float = 0.35     # a pause this long ends it
    min_speech_s: float = 0.25        # shorter bursts are clicks and breaths
    max_utterance_s: float = 20.0     # longer ones are cut at their quietest point
    pad_s: float = 0.15               # kept around each utterance so no syllable is clipped
    energy_speech_dbfs: float = -42.0   # without a VAD model: louder chunks are speech


def energy_odds(audio: np.ndarray, settings: SplitSettings = SplitSettings()) -> np.ndarray:
    """1.0 per 512-sample chunk louder than `energy_speech_dbfs`, else 0.0 (no VAD model)."""
    n = len(audio) // CHUNK
    chunks = np.asarray(audio[:n * CHUNK], np.float64).reshape(n, CHUNK)
    rms = np.sqrt(np.mean(chunks ** 2, axis=1)) + 1e-12
    return (20 * np.log10(rms) > settings.energy_speech_dbfs).astype(np.float32)


def regions(odds: np.ndarray, settings: SplitSettings = SplitSettings(),
            more_to_come: bool = False) -> tuple[list[tuple[int, int]], int]:
    """(start, end) sample offsets of each utterance, padded, in order, not overlapping; and
    how far (in samples) the audio is settled.

    With `more_to_come` (a meeting still recording), speech still going at the end of
    `odds` may continue in the next segment: it is left out, and the settled point is
    where it began, so it is taken whole next time.
    """
    s = settings
    chunk_s = CHUNK / RATE_HZ
    gap_chunks = max(1, round(s.split_silence_s / chunk_s))
    found, start, quiet = [], None, 0
    for i, p in enumerate(odds):
        if start is None:
            if p >= s.speech_prob:
                start, quiet = i, 0
        elif p >= s.keep_prob:
            quiet = 0
        else:
            quiet += 1
            if quiet >= gap_chunks:
                found.append((start, i - quiet + 1))
                start = None
    settled = len(odds)
    most = round(s.max_utterance_s / chunk_s)
    if start is not None:
        if not more_to_come:
            found.append((start, len(odds) - quiet))
        elif len(odds) - start > most:
            # A monologue longer than an utterance may be: take what is cut off already.
            *whole, last = _cut_long(odds, start, len(odds), most)
            found += whole
            settled = last[0]
        else:
            settled = start
    out = []
    for a, b in found:
        if (b - a) * chunk_s < s.min_speech_s:
            continue
        out += _cut_long(odds, a, b, most)
    pad = round(s.pad_s * RATE_HZ)
    total = len(odds) * CHUNK
    padded = []
    for a, b in out:
        lo, hi = max(0, a * CHUNK - pad), min(total, b * CHUNK + pad)
        if padded and lo < padded[-1][1]:
            lo = padded[-1][1]          # padding never reaches into the previous utterance
        padded.append((lo, hi))
    if settled < len(odds):
        settled_at = max(0, settled * CHUNK - pad)
        if padded:
            settled_at = max(settled_at, padded[-1][1])
        return padded, settled_at
    return padded, total


def _cut_long(odds: np.ndarray, a: int, b: int, most: int) -> list[tuple[int, int]]:
    """[a, b) in pieces of at most `most` chunks, each cut where speech is least likely."""
    if b - a <= most:
        return [(a, b)]
    lo, hi = a + most // 2, a + most          # cut in the second half of the allowed span
    cut = lo + int(np.argmin(odds[lo:hi]))
    return [(a, cut)] + _cut_long(odds, cut, b, most)

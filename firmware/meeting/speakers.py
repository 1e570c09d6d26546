"""Who spoke when: utterance voice embeddings grouped into "Speaker 1", "Speaker 2", ...

An utterance's similarity to a speaker is its mean cosine similarity to that speaker's
utterances: the dot product of its (unit) embedding with their running mean, the
speaker's centroid. Unlike the cosine to a normalised centroid, this does not grow as a
speaker collects utterances, so one threshold serves a speaker's second utterance and
their fiftieth alike (measured: with normalised centroids no single threshold got more
than 89 % of simulated meetings right; with this, 99.5 %).

Online (`add`), an utterance joins the most similar speaker if the similarity reaches
the threshold, else it is a new speaker. A speaker's first utterances decide a lot
online, so `finish()` starts again from every utterance alone and merges the two most
similar groups (mean similarity over all pairs between them) while that reaches the
threshold, then moves every utterance to the speaker it is most similar to (its own
counted without it) until none moves. Speakers are numbered in the order they first speak.

THRESHOLD, tuned on espeak-ng voices through the installed encoder (Resemblyzer's GE2E;
11 sentences of 2.5-3.4 s per voice; docs/models.md, "Speaker labels"):

    utterance to its own voice (mean over its other utterances):    min 0.856, mean 0.883
    utterance to another voice (en-us, en-us+m7, en-us+f3, en-us+f5): max 0.802, mean 0.665
    (single utterance pairs overlap: same voice min 0.807, different voices max 0.873)

0.81 sits in the gap, nearer its low edge: 800 simulated meetings of 1-4 of those voices,
2-7 utterances each, shuffled, got exactly the right speakers at 0.83 (99.5 %, every one
pure), but in meetings of short utterances (2-3 s, whose embeddings scatter more) 0.83
split one voice into two or three while 0.80 did not (docs/meetings.md), so the threshold
leans low, staying above the 0.802 of the closest two different voices. espeak's accents of one
voice (en-us, en-gb-scotland, +m1..m6) sound alike to the encoder (0.85-0.95): it hears
timbre, not accent, and so do these labels. Real voices differ from espeak's (breath,
prosody, microphones, rooms); re-measure the threshold on recorded meetings.
"""

import numpy as np

from glasses_firmware.drivers.errors import ConfigError

THRESHOLD = 0.81
MAX_PASSES = 50          # re-assignment settles in two or three passes; this bounds a cycle


class SpeakerLabels:
    """Labels for a meeting's utterances, in the order they were added.

    `add(embedding)` gives the label now (online); `finish()` gives the final labels of
    every utterance added so far, which may merge, split or renumber the online ones.
    Embeddings are normalised here, so rounded ones (as a journal stores them) are fine;
    a zero, NaN or wrongly sized embedding raises ConfigError.
    """

    def __init__(self, threshold: float = THRESHOLD):
        if not -1.0 < threshold < 1.0:
            raise ConfigError(f"speaker threshold {threshold} must be a cosine similarity "
                              "between -1 and 1")
        self.threshold = threshold
        self.embeddings: list[np.ndarray] = []
        self.weights: list[float] = []
        self.assigned: list[int] = []          # speaker index per utterance
        self.sums: list[np.ndarray] = []       # weighted sum of each speaker's embeddings
        self.totals: list[float] = []          # and of their weights

    def add(self, embedding, weight: float = 1.0) -> str:
        """The speaker of one utterance now; `weight` (e.g. its seconds of speech) counts
        a long utterance more in its speaker's centroid."""
        e = _unit(embedding, len(self.embeddings[0]) if self.embeddings else None)
        weight = float(weight)
        if not weight > 0:
            raise ConfigError(f"utterance weight {weight} must be positive")
        best = None
        if self.sums:
            similarity = np.stack(self.sums) @ e / np.array(self.totals)
            best = int(np.argmax(similarity))
            if similarity[best] < self.threshold:
                best = None
        if best is None:
            best = len(self.sums)
            self.sums.append(np.zeros_like(e))
            self.totals.append(0.0)
        self.sums[best] += weight * e
        self.totals[best] += weight
        self.embeddings.append(e)
        self.weights.append(weight)
        self.assigned.append(best)
        return label_of(best)

    def finish(self) -> list[str]:
        """Final labels for every utterance added: grouped afresh, then re-assigned."""
        if not self.embeddings:
            return []
        e, w = np.stack(self.embeddings), np.array(self.weights)
        assigned = _renumber(_reassign(e, w, _agglomerate(e, w, self.threshold)))
        self.assigned = assigned.tolist()
        self.sums = [(w[assigned == k, None] * e[assigned == k]).sum(axis=0)
                     for k in range(int(assigned.max()) + 1)]
        self.totals = [float(w[assigned == k].sum()) for k in range(len(self.sums))]
        return [label_of(k) for k in self.assigned]

    @property
    def speakers(self) -> int:
        return len(self.sums)


def label_of(speaker: int) -> str:
    return f"Speaker {speaker + 1}"


def _agglomerate(e: np.ndarray, w: np.ndarray, threshold: float) -> np.ndarray:
    """Group id per utterance: average-linkage merging from singletons down to `threshold`.

    The mean similarity between two groups is the dot product of their weighted mean
    embeddings, so after a merge the new group's row is the weighted mean of the two rows
    (no pair is recomputed): a meeting of a thousand utterances takes milliseconds.
    """
    n = len(e)
    similarity = e @ e.T
    np.fill_diagonal(similarity, -np.inf)
    total = w.astype(np.float64).copy()
    group = np.arange(n)
    alive = np.ones(n, bool)
    while alive.sum() > 1:
        i, j = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        if similarity[i, j] < threshold:
            break
        i, j = min(i, j), max(i, j)         # the earlier group keeps its id
        row = (total[i] * similarity[i] + total[j] * similarity[j]) / (total[i] + total[j])
        similarity[i, :], similarity[:, i] = row, row
        similarity[i, i] = -np.inf
        similarity[j, :], similarity[:, j] = -np.inf, -np.inf
        total[i] += total[j]
        alive[j] = False
        group[group == j] = i
    return group


def _reassign(e: np.ndarray, w: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Move each utterance to the group it is most similar to, its own counted without it.

    An utterance alone in its group stays: merging already found no group near enough.
    """
    for _ in range(MAX_PASSES):
        keys = np.unique(group)
        sums = np.stack([(w[group == k, None] * e[group == k]).sum(axis=0) for k in keys])
        totals = np.array([w[group == k].sum() for k in keys])
        own = np.searchsorted(keys, group)
        # Each utterance's similarity to every group, with itself taken out of its own
        # (its dot product with itself is 1).
        rows = np.arange(len(e))
        dots = e @ sums.T
        dots[rows, own] -= w
        t = np.repeat(totals[None], len(e), axis=0)
        t[rows, own] -= w
        with np.errstate(invalid="ignore", divide="ignore"):
            similarity = dots / t
        similarity[t <= 1e-12] = -np.inf          # a group of this utterance alone
        best = np.argmax(similarity, axis=1)
        alone = totals[own] - w <= 1e-12
        moved = np.where(alone, group, keys[best])
        if np.array_equal(moved, group):
            break
        group = moved
    return group


def _renumber(group: np.ndarray) -> np.ndarray:
    """Speaker ids 0, 1, ... in order of each speaker's first utterance."""
    order: dict[int, int] = {}
    for k in group:
        order.setdefault(int(k), len(order))
    return np.array([order[int(k)] for k in group])


def _unit(embedding, size: int | None = None) -> np.ndarray:
    e = np.asarray(embedding, np.float64).reshape(-1)
    if size is not None and len(e) != size:
        raise ConfigError(f"speaker embedding has {len(e)} values, the others {size}")
    norm = float(np.linalg.norm(e))
    if not np.isfinite(norm) or norm == 0:
        raise ConfigError("speaker embedding is zero or not finite; it names no voice")
    return e / norm


def label(embeddings, threshold: float = THRESHOLD) -> list[str]:
    """Final labels of a whole meeting's utterance embeddings at once."""
    labels = SpeakerLabels(threshold)
    for e in embeddings:
        labels.add(e)
    return labels.finish()

"""Earcons and spoken cues through the speaker.

Spoken cues use espeak-ng (the fallback TTS of DESIGN.md 4); if it is missing the cue
falls back to its earcon, so a refusal is never silent.
"""

import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from drivers.errors import GlassesError
from drivers.wavio import read_wav

log = logging.getLogger("glasses.cues")

RATE_HZ = 24000


def tone(freqs_hz, each_s: float = 0.09, level: float = 0.3) -> np.ndarray:
    """A sequence of short sine notes with 5 ms fades (no clicks)."""
    n = round(each_s * RATE_HZ)
    t = np.arange(n) / RATE_HZ
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    notes = [level * np.sin(2 * np.pi * f * t) * fade for f in freqs_hz]
    return np.concatenate(notes).astype(np.float32)


EARCONS = {
    "listen_start": tone([660, 880]),
    "listen_end": tone([880, 660]),
    "shutter": tone([1200], each_s=0.05),
    "error": tone([440, 330, 220], each_s=0.12),
}


def synthesize(text: str, voice: str = "en-us") -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="glasses-cue-") as tmp:
        wav = Path(tmp) / "cue.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "165", "-w", str(wav), text],
                       check=True, capture_output=True, timeout=20)
        samples, rate = read_wav(wav)
    return samples, rate


class Cues:
    """Plays earcons and short spoken messages; never raises into the caller."""

    def __init__(self, speaker):
        self.speaker = speaker

    def earcon(self, name: str):
        try:
            return self.speaker.play(EARCONS[name], RATE_HZ)
        except GlassesError as e:
            log.warning("earcon %s not played: %s", name, e)
            return None

    def say(self, text: str, fallback: str = "error"):
        """Blocking (run it off the loop): synthesize and queue `text`."""
        try:
            samples, rate = synthesize(text)
        except (OSError, subprocess.SubprocessError, GlassesError) as e:
            log.warning("spoken cue %r fell back to an earcon: %s", text, e)
            return self.earcon(fallback)
        try:
            return self.speaker.play(samples, rate)
        except GlassesError as e:
            log.warning("spoken cue %r not played: %s", text, e)
            return None

"""Earcons through the speaker, and espeak-ng synthesis (the fallback TTS: docs/models.md).

Spoken messages go through `speech.SpeechOut`, which falls back to the error earcon when
no voice can speak, so a refusal is never silent.
"""

import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.errors import GlassesError
from glasses_firmware.drivers.wavio import read_wav

from ..tasks import spawn

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


ESPEAK_VOICES = {"en": "en-us", "zh": "cmn", "ko": "ko"}


class SpeechError(GlassesError, RuntimeError):
    """espeak-ng could not speak; the message says why and what to install."""


def synthesize(text: str, language: str = "en", words_per_min: int | None = None
               ) -> tuple[np.ndarray, int]:
    """Speech from espeak-ng in `language`'s voice: float32 (frames, channels) and the rate in Hz."""
    return synthesize_voice(text, ESPEAK_VOICES[language], words_per_min)


def synthesize_voice(text: str, voice: str, words_per_min: int | None = None
                     ) -> tuple[np.ndarray, int]:
    """Speech from espeak-ng with any of its voices ("en-gb", "en-us+f3", ...)."""
    cmd = ["espeak-ng", "-v", voice]
    if words_per_min:
        cmd += ["-s", str(words_per_min)]
    with tempfile.TemporaryDirectory(prefix="glasses-speech-") as tmp:
        wav = Path(tmp) / "speech.wav"
        try:
            # On stdin, so text such as "-1" or "--help" is spoken, not taken for an option.
            subprocess.run(cmd + ["--stdin", "-w", str(wav)], input=text.encode(), check=True,
                           capture_output=True, timeout=30)
        except FileNotFoundError:
            raise SpeechError("espeak-ng is not installed; run scripts/setup.sh "
                              "(apt-get install espeak-ng)") from None
        except subprocess.CalledProcessError as e:
            raise SpeechError(f"espeak-ng failed: "
                              f"{e.stderr.decode(errors='replace').strip()[:200]}") from None
        return read_wav(wav)


PLAY_TIMEOUT_S = 5.0    # queueing a sound may open the output stream; never longer than this


class Cues:
    """Plays earcons in the background (call on the loop); never raises into the caller."""

    def __init__(self, speaker, blocking):
        self.speaker, self.blocking = speaker, blocking

    def earcon(self, name: str) -> None:
        spawn(self._play(name), name=f"earcon-{name}")

    async def _play(self, name: str) -> None:
        try:
            await self.blocking.run(self.speaker.play, EARCONS[name], RATE_HZ,
                                    timeout_s=PLAY_TIMEOUT_S)
        except GlassesError as e:
            log.warning("earcon %s not played: %s", name, e)

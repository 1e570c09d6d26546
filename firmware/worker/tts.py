"""Speech synthesis: a Piper-class VITS voice (ONNX), espeak-ng when no voice is installed.

Piper voices carry a `.onnx.json` with the sample rate and phoneme-id map. Voices with
`phoneme_type = "espeak"` are fed IPA from `espeak-ng --ipa`; the test voice maps
characters directly (`"text"`).
"""

import io
import json
import shutil
import subprocess
import wave

import numpy as np

from drivers.errors import GlassesError

from .sessions import make_session

ESPEAK_TIMEOUT_S = 20


class TtsError(GlassesError, RuntimeError):
    """Neither a voice model nor espeak-ng could speak the text."""


class Tts:
    """Text to float32 mono audio at `rate_hz`."""

    def __init__(self, files, threads: int):
        by_name = {p.name: p for p in files}
        self.session = make_session(by_name["voice.onnx"], threads)
        self.config = json.loads(by_name["voice.onnx.json"].read_text())
        self.rate_hz = int(self.config["audio"]["sample_rate"])
        self.id_map = self.config["phoneme_id_map"]
        inf = self.config.get("inference", {})
        self.scales = np.array([inf.get("noise_scale", 0.667), inf.get("length_scale", 1.0),
                                inf.get("noise_w", 0.8)], np.float32)

    def _ids(self, text: str) -> list[int]:
        if self.config.get("phoneme_type") == "espeak":
            text = _espeak(["--ipa", "-q", text]).decode("utf-8")
        ids = list(self.id_map.get("^", []))
        for ch in text.lower():
            if ch in self.id_map:
                ids += self.id_map[ch] + self.id_map.get("_", [])
        return ids + list(self.id_map.get("$", []))

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        ids = np.array([self._ids(text)], np.int64)
        audio = self.session.run(None, {"input": ids, "input_lengths": np.array([ids.shape[1]]),
                                        "scales": self.scales})[0]
        return audio.reshape(-1).astype(np.float32), self.rate_hz


class EspeakTts:
    """The fallback voice: espeak-ng's own synthesiser, as WAV on stdout."""

    def __init__(self, voice: str = "en-us"):
        if shutil.which("espeak-ng") is None:
            raise TtsError("no TTS voice model is installed and espeak-ng is missing; "
                           "install it with `apt-get install espeak-ng`")
        self.voice = voice

    def speak(self, text: str) -> tuple[np.ndarray, int]:
        data = _espeak(["-v", self.voice, "--stdout", text])
        with wave.open(io.BytesIO(data)) as w:
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return (pcm.astype(np.float32) / 32768.0), rate


def _espeak(args: list[str]) -> bytes:
    try:
        proc = subprocess.run(["espeak-ng", *args], capture_output=True, timeout=ESPEAK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise TtsError(f"espeak-ng failed: {e}") from None
    if proc.returncode != 0:
        raise TtsError(f"espeak-ng exited {proc.returncode}: {proc.stderr.decode()[-200:]}")
    return proc.stdout

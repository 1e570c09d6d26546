"""16-bit PCM WAV files to and from float32 numpy arrays (frames, channels)."""

import io
import wave
from pathlib import Path

import numpy as np

from glasses_firmware.drivers.errors import ConfigError


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV as float32 (frames, channels) and its rate; errors name the file."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate_hz = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as e:
        raise ConfigError(f"{path}: not a PCM WAV file ({e})") from e
    if width != 2:
        raise ConfigError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is supported")
    if channels not in (1, 2):
        raise ConfigError(f"{path}: {channels} channels; only mono or stereo is supported")
    data = np.frombuffer(raw, "<i2").reshape(-1, channels)
    return data.astype(np.float32) / np.float32(2**15), rate_hz


def wav_bytes(samples: np.ndarray, rate_hz: int) -> bytes:
    """16-bit PCM WAV bytes of float (frames, channels) samples, clipped (never wrapped)."""
    x = np.asarray(samples, np.float32).reshape(len(samples), -1)
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()

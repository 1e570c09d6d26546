"""Whisper's log-mel features in numpy: what the encoder's `audio_features` input expects.

16 kHz audio, one 30 s window: padded with zeros (or cut) to 480,000 samples, a centred
STFT (reflect padding, periodic Hann window, n_fft 400, hop 160) whose last frame is
dropped, the power spectrum through 80 Slaney-normalised mel filters (built from the
formula, so no librosa), log10 with a floor of 1e-10, clamped to 8 decades below the
loudest value, then (x + 4) / 4. The result matches transformers' WhisperFeatureExtractor
(tested to 1e-4) and is float32 [n_mels, 3000].
"""

import numpy as np

RATE_HZ = 16000
N_FFT = 400
HOP = 160
WINDOW_S = 30
WINDOW_SAMPLES = RATE_HZ * WINDOW_S        # 480,000
N_FRAMES = WINDOW_SAMPLES // HOP           # 3000: the encoder's fixed input length
LOG_FLOOR = 1e-10
DYNAMIC_RANGE_DECADES = 8.0

# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above it.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def mel_filters(n_mels: int = 80, rate_hz: int = RATE_HZ, n_fft: int = N_FFT) -> np.ndarray:
    """Triangular filters [n_mels, n_fft // 2 + 1], equally spaced in mels from 0 Hz to Nyquist.

    Slaney normalisation: each triangle is scaled by 2 / (its width in Hz), so every
    filter has the same area and a wide high band does not outweigh a narrow low one.
    """
    if n_mels < 1 or n_fft < 2:
        raise ValueError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels} and {n_fft}")
    bins_hz = np.linspace(0, rate_hz / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(rate_hz / 2), n_mels + 2))
    widths = np.diff(edges_hz)
    rising = (bins_hz[None, :] - edges_hz[:-2, None]) / widths[:-1, None]
    falling = (edges_hz[2:, None] - bins_hz[None, :]) / widths[1:, None]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]


def hann(n: int = N_FFT) -> np.ndarray:
    """The periodic Hann window (as torch.hann_window): the STFT frames overlap-add flat."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


_FILTERS: dict[int, np.ndarray] = {}
_WINDOW = hann()


def log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """float32 [n_mels, 3000] features of the first 30 s of 16 kHz mono `audio`.

    Shorter audio is padded with zeros (digital silence), longer audio is cut: the caller
    splits long audio into windows (see asr.py). Raises ValueError for NaN/inf samples.
    """
    x = np.asarray(audio, np.float32).reshape(-1)[:WINDOW_SAMPLES]
    if not np.isfinite(x).all():
        raise ValueError("audio has NaN or infinite samples")
    x = np.concatenate([x, np.zeros(WINDOW_SAMPLES - len(x), np.float32)]).astype(np.float64)
    x = np.pad(x, N_FFT // 2, mode="reflect")
    # Frames as a strided view: 3001 overlapping 400-sample slices, no copy until windowed.
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:N_FRAMES]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2          # [3000, 201]
    if n_mels not in _FILTERS:
        _FILTERS[n_mels] = mel_filters(n_mels)
    mel = _FILTERS[n_mels] @ power.T                          # [n_mels, 3000]
    logs = np.log10(np.maximum(mel, LOG_FLOOR))
    logs = np.maximum(logs, logs.max() - DYNAMIC_RANGE_DECADES)
    return ((logs + 4.0) / 4.0).astype(np.float32)

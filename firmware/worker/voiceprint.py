"""Speaker embeddings: Resemblyzer's GE2E voice encoder (ONNX) on onnxruntime, features in numpy.

An utterance becomes what the encoder was trained on, with the numbers of
`speaker_config.json` (read from Resemblyzer's hparams.py at install):

1. the volume raised, never lowered, to -30 dBFS RMS;
2. long silences cut: 30 ms windows marked voiced, the marks smoothed over 8 windows
   (a majority), voiced runs widened by 3 windows each side so pauses of up to 6 windows
   stay. Resemblyzer marks windows with webrtcvad; we mark them by energy (`voiced`),
   which needs no other package and is enough for utterances a VAD has already cut;
3. mel power [frames, 40], not its log: 25 ms periodic-Hann frames every 10 ms, centred
   with zero padding (librosa >= 0.9, which Resemblyzer 0.1.4 requires), Slaney mel
   filters from 0 Hz to Nyquist (`mel.mel_filters`, as librosa's defaults);
4. partial windows of 160 frames (1.6 s) every 77 frames (1.3 a second, 52 % overlap),
   until one reaches past the end; the audio is zero-padded to fill the last one, which is
   dropped if less than 3/4 of it is audio (unless it is the only one);
5. every partial through the encoder in one batch; their mean, L2-normalised.
"""

import json

import numpy as np

from glasses_firmware.drivers.errors import ConfigError

from . import mel
from .errors import BadInput
from .sessions import make_session

MIN_SPEECH_S = 0.5           # less than this is a word or two: too little to tell voices apart
SILENCE_DBFS = -60.0         # quieter windows are never speech, however quiet the rest
SPEECH_RANGE_DB = 30.0       # speech windows are within this of the loudest (95th percentile)
MAX_BATCH = 32               # partials per encoder run: 32 x 1.6 s, about 25 s of speech
CONFIG_KEYS = ("sample_rate_hz", "mel_bands", "window_ms", "hop_ms", "partial_frames",
               "partial_step_frames", "partial_min_coverage", "volume_target_dbfs",
               "vad_window_ms", "vad_smoothing_windows", "vad_max_silence_windows",
               "embedding_size", "input", "output")


class VoicePrint:
    """Voice embeddings of 16 kHz mono speech: `embed(audio)` -> float32 [256], unit norm.

    Utterances of one voice give nearby embeddings (compare them by cosine similarity, the
    dot product). Less than 0.5 s of speech, or NaN/inf samples, raise BadInput; a model
    directory missing a file or a config key raises ConfigError.
    """

    def __init__(self, files, threads: int):
        by_name = {p.name: p for p in files}
        missing = [n for n in ("encoder.onnx", "speaker_config.json") if n not in by_name]
        if missing:
            raise ConfigError(f"the speaker model's manifest entry lacks {', '.join(missing)}; "
                              "reinstall it with `glasses models install --only speaker --force` "
                              "(or build-test)")
        path = by_name["speaker_config.json"]
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path}: cannot read the speaker config: {e}") from None
        lacking = [k for k in CONFIG_KEYS if k not in config]
        if lacking:
            raise ConfigError(f"{path} lacks {', '.join(lacking)}; reinstall the speaker model")
        self.config = config
        self.rate_hz = int(config["sample_rate_hz"])
        self.n_fft = self.rate_hz * int(config["window_ms"]) // 1000
        self.hop = self.rate_hz * int(config["hop_ms"]) // 1000
        self.bands = int(config["mel_bands"])
        self.filters = mel.mel_filters(self.bands, self.rate_hz, self.n_fft).T   # [bins, bands]
        self.window = mel.hann(self.n_fft)
        self.session = make_session(by_name["encoder.onnx"], threads)
        self.input, self.output = str(config["input"]), str(config["output"])
        shape = next((i.shape for i in self.session.get_inputs() if i.name == self.input), None)
        if shape is None or shape[-1] != self.bands:
            raise ConfigError(f"{by_name['encoder.onnx']} has no input {self.input!r} of "
                              f"{self.bands} mel bands (found {shape}); reinstall the speaker model")

    def embed(self, audio_16k: np.ndarray) -> np.ndarray:
        """float32 [embedding_size], unit norm; BadInput for NaN/inf or under 0.5 s of speech."""
        audio = np.asarray(audio_16k, np.float32).reshape(-1)
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        if bad:
            raise BadInput(f"audio has {bad} NaN or infinite samples of {len(audio)}; "
                           "refusing to embed it")
        speech, speech_s = self.speech(audio)
        if speech_s < MIN_SPEECH_S:
            raise BadInput(f"only {speech_s:.2f} s of speech in {len(audio) / self.rate_hz:.2f} s "
                           f"of audio; telling voices apart needs at least {MIN_SPEECH_S} s")
        partials = self.partials(speech)
        embeddings = np.concatenate([
            self.session.run([self.output], {self.input: partials[i:i + MAX_BATCH]})[0]
            for i in range(0, len(partials), MAX_BATCH)])
        mean = embeddings.astype(np.float64).mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def speech(self, audio: np.ndarray) -> tuple[np.ndarray, float]:
        """(the audio at the trained volume with long silences cut, seconds of speech in it)."""
        c = self.config
        window = self.rate_hz * int(c["vad_window_ms"]) // 1000
        n = len(audio) // window
        if n == 0:
            return audio[:0], 0.0
        windows = audio[:n * window].astype(np.float64).reshape(n, window)
        marked = voiced(windows)
        # Smoothing: a window counts when most of the windows around it are voiced, so a
        # click is not speech and a short dip inside a word is not silence.
        width = int(c["vad_smoothing_windows"])
        padded = np.concatenate([np.zeros((width - 1) // 2), marked, np.zeros(width // 2)])
        counts = np.convolve(padded, np.ones(width), mode="valid")
        speaking = counts > width / 2
        # Widening: pauses up to vad_max_silence_windows inside speech are kept, as trained.
        reach = int(c["vad_max_silence_windows"]) // 2
        kept = np.convolve(np.concatenate([np.zeros(reach), speaking, np.zeros(reach)]),
                           np.ones(2 * reach + 1), mode="valid") > 0
        speech = windows[kept].reshape(-1)
        speech_s = float(speaking.sum()) * window / self.rate_hz
        rms = float(np.sqrt(np.mean(speech ** 2))) if len(speech) else 0.0
        if rms > 0:
            # Resemblyzer measures the volume before cutting silences: the same here.
            level_db = 20 * np.log10(max(float(np.sqrt(np.mean(windows ** 2))), 1e-12))
            gain_db = float(c["volume_target_dbfs"]) - level_db
            if gain_db > 0:
                speech = speech * 10.0 ** (gain_db / 20)
        return speech.astype(np.float32), speech_s

    def partials(self, speech: np.ndarray) -> np.ndarray:
        """float32 [partials, partial_frames, bands] mel windows covering `speech`."""
        c = self.config
        size, step = int(c["partial_frames"]), int(c["partial_step_frames"])
        n_frames = 1 + len(speech) // self.hop
        starts = [0]
        while starts[-1] + size <= n_frames:     # until a window reaches past the last frame
            starts.append(starts[-1] + step)
        covered = (len(speech) - starts[-1] * self.hop) / (size * self.hop)
        if covered < float(c["partial_min_coverage"]) and len(starts) > 1:
            starts.pop()
        end = (starts[-1] + size) * self.hop
        padded = np.concatenate([speech, np.zeros(max(0, end - len(speech)), np.float32)])
        power = self.mel_power(padded)
        return np.stack([power[s:s + size] for s in starts]).astype(np.float32)

    def mel_power(self, audio: np.ndarray) -> np.ndarray:
        """float32 [frames, bands]: mel-filtered power spectrum, one frame per hop, centred."""
        x = np.pad(audio.astype(np.float64), self.n_fft // 2)
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[::self.hop]
        spectrum = np.fft.rfft(frames[:1 + len(audio) // self.hop] * self.window, axis=1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        return (power @ self.filters).astype(np.float32)


def voiced(windows: np.ndarray) -> np.ndarray:
    """bool per row of `windows` (samples, full scale 1.0): loud enough to be speech.

    Relative to the loudest windows (their 95th percentile), so a quiet talker is still
    heard, and never below SILENCE_DBFS, so digital silence and hiss are not speech.
    """
    level_db = 10 * np.log10(np.mean(windows ** 2, axis=1) + 1e-20)
    return level_db > max(SILENCE_DBFS, float(np.percentile(level_db, 95)) - SPEECH_RANGE_DB)

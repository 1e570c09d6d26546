"""Speech recognition: Whisper's encoder and decoder on plain onnxruntime, beam search.

The model directory is what the onnxruntime-genai builder's Whisper path writes, plus our
`asr_config.json` (see docs/models.md): `encoder.onnx` turns 30 s of log-mel features
into the cross-attention keys/values of every decoder layer (computed once per window);
`decoder.onnx` takes new token ids and its own past keys/values and returns the logits
and the grown keys/values, so each step feeds one token.

Decoding, per 30 s window: `<|startoftranscript|>` alone first, whose logits over the
language tokens give the language and its probability; then `<|lang|><|task|>
<|notimestamps|>`, then one token at a time until `<|endoftext|>` or the token budget.
Whisper's vocabulary puts every special token after `<|endoftext|>`, so text decoding
never emits anything above it; `suppress_ids` (non-speech symbols) are never emitted
either, and `suppress_ids_begin` (a lone space, end of text) not as the first token.
Audio longer than one window is cut at the quietest 20 ms near each 30 s boundary and
the windows' texts joined; the language found in the first window is kept for the rest.
"""

import json

import numpy as np

from glasses_firmware.drivers.errors import ConfigError

from . import mel
from .errors import BadInput
from .sessions import make_session

TASKS = ("transcribe", "translate")
MIN_AUDIO_S = 0.1            # shorter than any word: nothing to recognise
SILENCE_RMS = 1e-4           # -80 dBFS: digital silence, where Whisper only hallucinates
TOKENS_PER_S = 15            # above any speaking rate, in Whisper tokens (Chinese included)
MIN_TOKEN_BUDGET = 10
CUT_SEARCH_S = 3.0           # a long recording is cut at the quietest point in this span
CUT_FRAME_SAMPLES = 320      # 20 ms
# Whisper sometimes loops ("I'm so sorry. I'm so sorry. ..."): a run of tokens repeated
# this many times back to back, at least LOOP_MIN_TOKENS long in all, ends the window
# with one copy kept. Real repetition ("no, no, no") is shorter than that.
DEFAULT_BEAMS = 5            # see _beam_search for what it buys and costs
LOOP_REPEATS = 5
LOOP_MIN_TOKENS = 15
LOOP_MAX_PERIOD = 12
MODEL_FILES = ("encoder.onnx", "decoder.onnx", "tokenizer.json", "asr_config.json",
               "genai_config.json")


class Asr:
    """Transcribe or translate 16 kHz mono float32 audio with a Whisper-class model.

    `stream()` yields the text so far after each token; `transcribe()` returns the result
    {"text", "language", "language_prob"}. Bad input (NaN/inf samples, an unknown task or
    language) raises BadInput; a model directory missing a file raises ConfigError.
    """

    def __init__(self, files, threads: int, beams: int = DEFAULT_BEAMS):
        from tokenizers import Tokenizer
        if beams < 1:
            raise ConfigError(f"ASR beams={beams}: choose 1 (greedy) or more")
        self.beams = beams
        by_name = {p.name: p for p in files}
        missing = [name for name in MODEL_FILES if name not in by_name]
        if missing:
            raise ConfigError(f"the ASR model's manifest entry lacks {', '.join(missing)}; "
                              "reinstall it with `glasses models install` (or build-test)")
        self.encoder = make_session(by_name["encoder.onnx"], threads)
        self.decoder = make_session(by_name["decoder.onnx"], threads)
        self.tokenizer = Tokenizer.from_file(str(by_name["tokenizer.json"]))
        config = json.loads(by_name["asr_config.json"].read_text())
        genai = json.loads(by_name["genai_config.json"].read_text())["model"]
        self.n_mels = int(config.get("n_mels", 80))
        self.multilingual = bool(config.get("multilingual", True))
        self.suppress_ids = [int(i) for i in config.get("suppress_ids", ())]
        self.suppress_ids_begin = [int(i) for i in config.get("suppress_ids_begin", ())]
        self.sot = self._special("<|startoftranscript|>")
        self.eot = self._special("<|endoftext|>")
        self.no_timestamps = self._special("<|notimestamps|>")
        self.task_ids = {task: self._special(f"<|{task}|>") for task in TASKS}
        # Codes from the tokens themselves ("<|en|>" -> "en"), in the config's id order.
        self.lang_ids = np.array([int(i) for i in config.get("lang_ids", ())], np.int64)
        self.languages = tuple(self.tokenizer.id_to_token(int(i))[2:-2] for i in self.lang_ids)
        if self.multilingual and not self.languages:
            raise ConfigError("asr_config.json says multilingual but lists no lang_ids")
        self.lang_id = dict(zip(self.languages, (int(i) for i in self.lang_ids)))
        dec = genai["decoder"]
        self.n_layers = int(dec["num_hidden_layers"])
        self.kv_shape = (1, int(dec["num_attention_heads"]), 0, int(dec["head_size"]))
        self.names = _io_names(genai, self.n_layers)
        # Whisper generates at most half its context (as the reference implementation).
        self.max_new_tokens = int(genai["context_length"]) // 2
        ids_type = next(i.type for i in self.decoder.get_inputs() if i.name == "input_ids")
        self.ids_dtype = np.int64 if "int64" in ids_type else np.int32

    def _special(self, token: str) -> int:
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise ConfigError(f"the ASR tokenizer has no {token} token: not a Whisper tokenizer")
        return int(i)

    def transcribe(self, audio, task: str = "transcribe", language: str | None = None) -> dict:
        """The whole result at once: {"text", "language", "language_prob"}."""
        gen = self.stream(audio, task, language)
        while True:
            try:
                next(gen)
            except StopIteration as end:
                return end.value

    def stream(self, audio, task: str = "transcribe", language=None, should_stop=None):
        """Yield the text so far after each token; return {"text", "language", "language_prob"}.

        `language` forces the source language (a code of `self.languages`); None detects
        it among all; a list of codes detects it among those (the glasses answer in a few
        languages, and a short clip is otherwise easily taken for another one). `language_prob` is the model's probability of the language used (None for an
        English-only model, which has no language tokens). `translate` gives English text.
        `should_stop()` is polled between tokens; stopping returns what was decoded.
        """
        audio = self._checked(audio, task, language)
        forced = language if isinstance(language, str) else None
        candidates = None if language is None or forced else list(language)
        result = {"text": "", "language": forced if self.multilingual else "en",
                  "language_prob": None}
        done: list[str] = []
        shown = ""   # the last partial yielded
        for start, end in windows(len(audio), audio):
            piece = audio[start:end]
            if len(piece) < MIN_AUDIO_S * mel.RATE_HZ or _rms(piece) < SILENCE_RMS:
                continue
            cross = self._encode(piece)
            logits, past, lang, prob = self._prompt(cross, result["language"], task, candidates)
            if result["language_prob"] is None:
                result["language"], result["language_prob"] = lang, prob
            budget = min(self.max_new_tokens,
                         MIN_TOKEN_BUDGET + int(TOKENS_PER_S * len(piece) / mel.RATE_HZ))
            decode = self._greedy if self.beams <= 1 else self._beam_search
            steps = decode(logits, past, cross, budget, should_stop)
            while True:
                try:
                    ids = next(steps)
                except StopIteration as end:
                    ids = end.value
                    break
                text = _join(done + [self.tokenizer.decode(ids).strip()])
                # A character split across byte tokens decodes as U+FFFD until its last
                # byte arrives: show it whole, one token later.
                if text != shown and not text.endswith("\ufffd"):
                    shown = text
                    yield text
            done.append(self.tokenizer.decode(ids).strip())
            result["text"] = _join(done)
            if result["text"] != shown:
                shown = result["text"]
                yield shown   # the last partial is always the final text
            if should_stop is not None and should_stop():
                break
        return result

    def _greedy(self, logits, past, cross, budget: int, should_stop):
        """Yield the ids so far after each token; return the window's ids."""
        ids: list[int] = []
        for _ in range(budget):
            if should_stop is not None and should_stop():
                break
            nxt = self._pick(logits, first=not ids)
            if nxt == self.eot:
                break
            ids.append(nxt)
            period, repeats = _loop(ids)
            if period:   # a hallucination loop: keep one copy and end the window
                del ids[len(ids) - period * (repeats - 1):]
                break
            yield ids
            logits, past = self._step([nxt], past, cross)
        return ids

    def _beam_search(self, logits, past, cross, budget: int, should_stop):
        """Beam search over `self.beams` hypotheses, one decoder batch per step.

        Yields after each step the tokens every hypothesis agrees on (so partial text only
        grows); returns the best finished hypothesis by log-probability per token. Measured on espeak speech with white noise at 20 dB SNR:
        5 beams 12.5 % WER against greedy's 23 %, for about 0.2 s more per utterance.
        """
        width = self.beams
        first = self._log_probs(logits, first=True)
        beams = [([int(t)], float(first[t])) for t in np.argsort(first)[::-1][:width]]
        cross_b = {k: np.repeat(v, width, axis=0) for k, v in cross.items()}
        past_b = {k: np.repeat(v, width, axis=0) for k, v in past.items()}
        finished: list[tuple[list[int], float]] = []
        for _ in range(budget):
            if should_stop is not None and should_stop():
                break
            yield _common_prefix([ids for ids, _ in beams + finished])
            feeds = {"input_ids": np.array([[ids[-1]] for ids, _ in beams], self.ids_dtype),
                     **past_b, **cross_b}
            outs = self.decoder.run(["logits"] + self.names["self_out"], feeds)
            candidates = []
            for row, (_, score) in enumerate(beams):
                lp = self._log_probs(outs[0][row, -1], first=False)
                for token in np.argpartition(lp, -width)[-width:]:
                    candidates.append((score + float(lp[token]), row, int(token)))
            candidates.sort(reverse=True)
            live, rows = [], []
            for score, row, token in candidates:
                ids = beams[row][0] + [token]
                period, repeats = _loop(ids)
                if token == self.eot or period:
                    # Ended, or a hallucination loop ended with one copy kept.
                    kept = ids[:-1] if token == self.eot else ids[:len(ids) - period * (repeats - 1)]
                    finished.append((kept, score / len(ids)))
                    continue
                live.append((ids, score))
                rows.append(row)
                if len(live) == width:
                    break
            if len(finished) >= width or not live:
                break
            while len(live) < width:          # keep the batch shape: repeat the last one
                live.append(live[-1])
                rows.append(rows[-1])
            beams = live
            grown = dict(zip(self.names["self_in"], outs[1:]))
            past_b = {k: v[rows] for k, v in grown.items()}
        finished += [(ids, score / len(ids)) for ids, score in beams]
        return max(finished, key=lambda f: f[1])[0]

    def _log_probs(self, logits: np.ndarray, first: bool) -> np.ndarray:
        logits = logits.astype(np.float64)
        logits[self.eot + 1:] = -np.inf       # special tokens other than the end: never text
        logits[self.suppress_ids] = -np.inf
        if first:
            logits[self.suppress_ids_begin] = -np.inf
        logits -= logits.max()
        return logits - np.log(np.exp(logits).sum())

    def _checked(self, audio, task: str, language) -> np.ndarray:
        if task not in TASKS:
            raise BadInput(f"ASR task {task!r} is not one of {', '.join(TASKS)}")
        codes = [language] if isinstance(language, str) else list(language or ())
        if language is not None and not codes:
            raise BadInput("an empty list of languages to choose from; give None to detect any")
        for code in codes:
            if not self.multilingual:
                if code != "en":
                    raise BadInput(f"the ASR model is English-only; it cannot take {code!r}")
            elif code not in self.lang_id:
                raise BadInput(f"language {code!r} is not one of the ASR model's "
                               f"{len(self.languages)} languages ({', '.join(self.languages[:12])}"
                               ", ...)")
        if task == "translate" and not self.multilingual:
            raise BadInput("the ASR model is English-only; it cannot translate")
        audio = np.asarray(audio, np.float32).reshape(-1)
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        if bad:
            raise BadInput(f"audio has {bad} NaN or infinite samples of {len(audio)}; "
                           "refusing to transcribe it")
        return audio

    def _encode(self, audio: np.ndarray) -> dict:
        features = mel.log_mel(audio, self.n_mels)[None]
        outs = self.encoder.run(self.names["cross_out"], {"audio_features": features})
        return dict(zip(self.names["cross_in"], outs))

    def _step(self, ids: list[int], past: dict, cross: dict):
        """Feed `ids` after the cached ones: (logits of the last position, new cache)."""
        feeds = {"input_ids": np.array([ids], self.ids_dtype), **past, **cross}
        outs = self.decoder.run(["logits"] + self.names["self_out"], feeds)
        return outs[0][0, -1], dict(zip(self.names["self_in"], outs[1:]))

    def _prompt(self, cross: dict, language: str | None, task: str, candidates=None):
        """Feed the start of transcript and the task prompt: (logits, cache, language, p).

        `language` None: the most likely language, among `candidates` if given."""
        empty = np.zeros(self.kv_shape, np.float32)
        past = {name: empty for name in self.names["self_in"]}
        if not self.multilingual:
            logits, past = self._step([self.sot, self.no_timestamps], past, cross)
            return logits, past, "en", None
        logits, past = self._step([self.sot], past, cross)
        probs = _softmax(logits[self.lang_ids])
        if language is None:
            allowed = [self.languages.index(c) for c in candidates] if candidates else \
                range(len(self.languages))
            language = self.languages[max(allowed, key=lambda i: probs[i])]
        prob = float(probs[self.languages.index(language)])
        logits, past = self._step([self.lang_id[language], self.task_ids[task],
                                   self.no_timestamps], past, cross)
        return logits, past, language, prob

    def _pick(self, logits: np.ndarray, first: bool) -> int:
        logits = logits.copy()
        logits[self.eot + 1:] = -np.inf      # special tokens: never text
        logits[self.suppress_ids] = -np.inf
        if first:
            logits[self.suppress_ids_begin] = -np.inf
        return int(np.argmax(logits))


def windows(n_samples: int, audio: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(start, end) sample ranges of at most 30 s covering all `n_samples`, in order.

    With `audio`, each cut is placed at the quietest 20 ms in the last 3 s before the
    30 s mark, so a word is rarely split between two windows; nothing is dropped.
    """
    out = []
    start = 0
    while n_samples - start > mel.WINDOW_SAMPLES:
        end = start + mel.WINDOW_SAMPLES
        if audio is not None:
            search = int(CUT_SEARCH_S * mel.RATE_HZ)
            frames = audio[end - search:end].reshape(-1, CUT_FRAME_SAMPLES)
            quietest = int(np.argmin((frames ** 2).sum(axis=1)))
            end = end - search + quietest * CUT_FRAME_SAMPLES + CUT_FRAME_SAMPLES // 2
        out.append((start, end))
        start = end
    if start < n_samples or not out:
        out.append((start, n_samples))
    return out


def _io_names(genai: dict, n_layers: int) -> dict[str, list[str]]:
    """Input/output names of the cross and self caches, from the genai config's templates."""
    enc_out, dec_in = genai["encoder"]["outputs"], genai["decoder"]["inputs"]
    dec_out = genai["decoder"]["outputs"]
    layers = range(n_layers)
    return {
        "cross_out": [enc_out["cross_present_key_names"] % i for i in layers]
        + [enc_out["cross_present_value_names"] % i for i in layers],
        "cross_in": [dec_in["cross_past_key_names"] % i for i in layers]
        + [dec_in["cross_past_value_names"] % i for i in layers],
        "self_in": [dec_in["past_key_names"] % i for i in layers]
        + [dec_in["past_value_names"] % i for i in layers],
        "self_out": [dec_out["present_key_names"] % i for i in layers]
        + [dec_out["present_value_names"] % i for i in layers],
    }


def _loop(ids: list[int]) -> tuple[int, int]:
    """(period, repeats) of a token run repeated back to back at the end of `ids`, or (0, 0).

    It takes LOOP_REPEATS repeats and LOOP_MIN_TOKENS tokens in all, so a short run must
    repeat more often: one token 15 times, two tokens 8 times, three or more 5 times.
    """
    for period in range(1, LOOP_MAX_PERIOD + 1):
        repeats = max(LOOP_REPEATS, -(-LOOP_MIN_TOKENS // period))
        span = period * repeats
        if len(ids) < span:
            continue
        tail = ids[-span:]
        if all(tail[i] == tail[i % period] for i in range(period, span)):
            return period, repeats
    return 0, 0


def _common_prefix(seqs: list[list[int]]) -> list[int]:
    first = seqs[0]
    n = len(first)
    for other in seqs[1:]:
        n = min(n, len(other))
        while n and other[:n] != first[:n]:
            n -= 1
    return first[:n]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _join(texts: list[str]) -> str:
    return " ".join(t for t in texts if t)

"""CTranslate2 Whisper -> Hugging Face Whisper folder; the ASR contract file; the encoder check.

The mapping undoes ctranslate2's own Whisper converter: its fused self-attention
projection `linear_0` is split into q, k, v (Whisper's k has no bias, so ctranslate2
stored zeros there), the cross-attention `linear_1` into k, v; `gamma`/`beta` are layer
norm weight/bias; the output projection is the token embedding (an alias in the file).
Weights are written as float32 with safetensors' numpy API: no torch in this step.

    python -m glasses_firmware.models.convert_whisper check HF_DIR ONNX_DIR    (child process: loads torch)
"""

import json
import re
import sys
from pathlib import Path

import numpy as np

from . import ct2
from .verify import ModelCorrupt

MULTILINGUAL_VOCAB = 51865          # Whisper's multilingual vocabulary; English-only is 51864
# The int8 encoder against the float32 torch encoder, measured on whisper base: int8
# rounding gives cosine similarity 0.9998 and RMS error 2 % of the signal's; q and k
# swapped in the mapping give 0.67 and 82 %. (The largest single error is 14 % of the
# largest value even when all is well, so it is no test.)
MIN_COSINE = 0.99
MAX_RELATIVE_RMS = 0.1


def to_hf(model_bin: Path, ct2_config: Path, tokenizer: Path, out: Path) -> dict:
    """Write `out/` (model.safetensors, config.json, tokenizer.json); returns the config."""
    from safetensors.numpy import save_file

    m = ct2.read(model_bin)
    if m.spec != "WhisperSpec":
        raise ct2.Ct2FormatError(f"{model_bin}: holds a {m.spec}, not a WhisperSpec")
    state = hf_state(m)
    config = hf_config(m, json.loads(Path(ct2_config).read_text()))
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "tokenizer.json").write_bytes(Path(tokenizer).read_bytes())
    return config


def _layers(m: ct2.Ct2Model, side: str) -> int:
    found = {int(k.split("/")[1][len("layer_"):]) for k in m.variables
             if re.match(rf"{side}/layer_\d+/", k)}
    if not found or found != set(range(len(found))):
        raise ct2.Ct2FormatError(f"the {side} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def hf_state(m: ct2.Ct2Model) -> dict[str, np.ndarray]:
    """transformers WhisperForConditionalGeneration tensor names -> float32 arrays."""
    state: dict[str, np.ndarray] = {}

    def put(dst: str, a: np.ndarray) -> None:
        state[dst] = np.ascontiguousarray(a, dtype=np.float32)

    def linear(dst: str, src: str) -> None:
        put(dst + ".weight", m.get(src + "/weight"))
        if src + "/bias" in m.variables:
            put(dst + ".bias", m.get(src + "/bias"))

    def norm(dst: str, src: str) -> None:
        put(dst + ".weight", m.get(src + "/gamma"))
        put(dst + ".bias", m.get(src + "/beta"))

    def zero_bias(a: np.ndarray, what: str) -> None:
        if np.any(a != 0):
            raise ct2.Ct2FormatError(f"{what}: the key projection has a non-zero bias; Whisper's has "
                                     "none, so this is not a Whisper model this mapping knows")

    def self_attention(dst: str, src: str) -> None:
        q, k, v = np.split(m.get(src + "/linear_0/weight"), 3)
        qb, kb, vb = np.split(m.get(src + "/linear_0/bias"), 3)
        zero_bias(kb, src)
        put(dst + ".q_proj.weight", q)
        put(dst + ".q_proj.bias", qb)
        put(dst + ".k_proj.weight", k)
        put(dst + ".v_proj.weight", v)
        put(dst + ".v_proj.bias", vb)
        linear(dst + ".out_proj", src + "/linear_1")

    def block(dst: str, src: str) -> None:
        self_attention(dst + ".self_attn", src + "/self_attention")
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        linear(dst + ".fc1", src + "/ffn/linear_0")
        linear(dst + ".fc2", src + "/ffn/linear_1")
        norm(dst + ".final_layer_norm", src + "/ffn/layer_norm")

    linear("model.encoder.conv1", "encoder/conv1")
    linear("model.encoder.conv2", "encoder/conv2")
    put("model.encoder.embed_positions.weight", m.get("encoder/position_encodings/encodings"))
    for i in range(_layers(m, "encoder")):
        block(f"model.encoder.layers.{i}", f"encoder/layer_{i}")
    norm("model.encoder.layer_norm", "encoder/layer_norm")

    put("model.decoder.embed_tokens.weight", m.get("decoder/embeddings/weight"))
    put("model.decoder.embed_positions.weight", m.get("decoder/position_encodings/encodings"))
    for i in range(_layers(m, "decoder")):
        dst, src = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        block(dst, src)
        cross = src + "/attention"
        linear(dst + ".encoder_attn.q_proj", cross + "/linear_0")
        k, v = np.split(m.get(cross + "/linear_1/weight"), 2)
        kb, vb = np.split(m.get(cross + "/linear_1/bias"), 2)
        zero_bias(kb, cross)
        put(dst + ".encoder_attn.k_proj.weight", k)
        put(dst + ".encoder_attn.v_proj.weight", v)
        put(dst + ".encoder_attn.v_proj.bias", vb)
        linear(dst + ".encoder_attn.out_proj", cross + "/linear_2")
        norm(dst + ".encoder_attn_layer_norm", cross + "/layer_norm")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    return state


def hf_config(m: ct2.Ct2Model, ct2_config: dict) -> dict:
    """A transformers WhisperConfig (as JSON) read off the tensor shapes."""
    vocab = m.get("decoder/embeddings/weight").shape[0]
    multilingual = vocab >= MULTILINGUAL_VOCAB
    ffn = m.get("encoder/layer_0/ffn/linear_0/weight").shape[0]
    return {
        "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
        "vocab_size": int(vocab), "num_mel_bins": int(m.get("encoder/conv1/weight").shape[1]),
        "d_model": int(m.get("encoder/layer_norm/gamma").shape[0]),
        "encoder_layers": _layers(m, "encoder"), "decoder_layers": _layers(m, "decoder"),
        "encoder_attention_heads": int(m.get("encoder/num_heads")),
        "decoder_attention_heads": int(m.get("decoder/num_heads")),
        "encoder_ffn_dim": int(ffn), "decoder_ffn_dim": int(ffn),
        "max_source_positions": int(m.get("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(m.get("decoder/position_encodings/encodings").shape[0]),
        "activation_function": "gelu", "scale_embedding": False, "tie_word_embeddings": True,
        "bos_token_id": 50257, "eos_token_id": 50257, "pad_token_id": 50257,
        "decoder_start_token_id": 50258 if multilingual else 50257,
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin"),
        "suppress_tokens": ct2_config.get("suppress_ids"),
        "alignment_heads": ct2_config.get("alignment_heads"), "torch_dtype": "float32",
    }


def asr_config(ct2_config: dict, hf: dict) -> dict:
    """The contract with the ASR runtime: mel bins, language ids and the tokens to suppress.

    Special token ids (start of transcript, <|en|>, no timestamps...) are not here: the
    runtime reads them from tokenizer.json by their strings.
    """
    missing = [k for k in ("lang_ids", "suppress_ids", "suppress_ids_begin") if k not in ct2_config]
    if missing:
        raise ModelCorrupt(f"the CTranslate2 config.json lacks {', '.join(missing)}; is it a "
                           "faster-whisper model?")
    return {"n_mels": hf["num_mel_bins"], "multilingual": hf["vocab_size"] >= MULTILINGUAL_VOCAB,
            "lang_ids": [int(x) for x in ct2_config["lang_ids"]],
            "suppress_ids": [int(x) for x in ct2_config["suppress_ids"]],
            "suppress_ids_begin": [int(x) for x in ct2_config["suppress_ids_begin"]]}


def check_encoder(hf_dir: Path, onnx_dir: Path) -> tuple[float, float]:
    """(cosine similarity, RMS error / RMS) of the ONNX encoder against torch on 2 s of sound."""
    import onnxruntime as ort
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    rate = 16000
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) + 0.05 * rng.standard_normal(t.size))
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    features = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)(
        audio.astype(np.float32), sampling_rate=rate, return_tensors="np").input_features
    with torch.no_grad():
        want = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    genai = json.loads((onnx_dir / "genai_config.json").read_text())["model"]["encoder"]
    session = ort.InferenceSession(str(onnx_dir / genai["filename"]), providers=["CPUExecutionProvider"])
    got = session.run([genai["outputs"]["encoder_hidden_states"]],
                      {genai["inputs"]["audio_features"]: features.astype(np.float32)})[0]
    if got.shape != want.shape:
        raise ModelCorrupt(f"the ONNX encoder gives shape {got.shape}, torch {want.shape}")
    a, b = got.ravel().astype(np.float64), want.ravel().astype(np.float64)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    relative = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    return cosine, relative


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 3 and argv[0] == "check":
        cosine, relative = check_encoder(Path(argv[1]), Path(argv[2]))
        print(f"encoder ONNX vs torch: cosine similarity {cosine:.5f} (at least {MIN_COSINE}), "
              f"RMS error {relative:.1%} of the signal (at most {MAX_RELATIVE_RMS:.0%})", flush=True)
        return 0 if cosine >= MIN_COSINE and relative <= MAX_RELATIVE_RMS else 3
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

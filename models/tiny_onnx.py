"""Tiny random-weight ONNX models with the production I/O, made with the onnx helper API.

- ASR, Moonshine-like encoder-decoder: `encoder.onnx` takes raw 16 kHz audio
  `input_values` [1, samples] (samples a multiple of 320) and gives `last_hidden_state`
  [1, frames, d]; `decoder.onnx` takes `input_ids` [1, n] and `encoder_hidden_states` and
  gives `logits` [1, n, vocab]. Greedy decoding from token 1 (start) until 2 (end).
  Quantized to int8 with onnxruntime's dynamic quantizer, as the production model is.
- TTS, Piper/VITS-shaped: `voice.onnx` takes `input` int64 [1, phonemes], `input_lengths`
  int64 [1], `scales` float32 [3] (noise, length, noise_w) and gives `output` float32
  [1, 1, samples]; `voice.onnx.json` carries sample rate and phoneme-id map like Piper's.

Random weights: mechanics and speed only. Every tensor is seeded, so builds repeat.
"""

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
FRAME_SAMPLES = 320          # 20 ms at 16 kHz per encoder frame
SAMPLES_PER_PHONEME = 256    # the tiny voice's fixed duration per phoneme id
TTS_RATE_HZ = 16000
ASR_START_ID, ASR_END_ID = 1, 2


def _w(rng, shape, scale=0.1) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="glasses-build-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def asr_encoder(path: Path, d_model: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(np.array([1, -1, FRAME_SAMPLES], np.int64), "frame_shape"),
             numpy_helper.from_array(_w(rng, (FRAME_SAMPLES, d_model)), "w_in"),
             numpy_helper.from_array(_w(rng, (d_model,)), "b_in"),
             numpy_helper.from_array(_w(rng, (d_model, d_model)), "w_mid")]
    nodes = [helper.make_node("Reshape", ["input_values", "frame_shape"], ["frames"]),
             helper.make_node("MatMul", ["frames", "w_in"], ["h0"]),
             helper.make_node("Add", ["h0", "b_in"], ["h1"]),
             helper.make_node("Tanh", ["h1"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w_mid"], ["h3"]),
             helper.make_node("Tanh", ["h3"], ["last_hidden_state"])]
    graph = helper.make_graph(
        nodes, "asr_encoder",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       [1, "frames", d_model])], inits)
    _save(graph, path)


def asr_decoder(path: Path, d_model: int, vocab: int, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(_w(rng, (vocab, d_model), 1.0), "embed"),
             numpy_helper.from_array(_w(rng, (d_model, d_model)), "w_x"),
             numpy_helper.from_array(_w(rng, (d_model, vocab), 1.0), "w_out"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes = [helper.make_node("Gather", ["embed", "input_ids"], ["tok"]),
             helper.make_node("ReduceMean", ["encoder_hidden_states", "axis1"], ["ctx"],
                              keepdims=1),
             helper.make_node("Add", ["tok", "ctx"], ["x0"]),
             helper.make_node("MatMul", ["x0", "w_x"], ["x1"]),
             helper.make_node("Tanh", ["x1"], ["x2"]),
             helper.make_node("MatMul", ["x2", "w_out"], ["logits"])]
    graph = helper.make_graph(
        nodes, "asr_decoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "tokens"]),
         helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT,
                                       [1, "frames", d_model])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "tokens", vocab])], inits)
    _save(graph, path)


def quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    src.unlink()


def build_asr(out: Path, tokenizer_json: Path, d_model: int = 64) -> None:
    """encoder.onnx, decoder.onnx (int8) and tokenizer.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    vocab = len(json.loads(tokenizer_json.read_text())["model"]["vocab"])
    for name, fn in (("encoder", lambda p: asr_encoder(p, d_model)),
                     ("decoder", lambda p: asr_decoder(p, d_model, vocab))):
        fp32 = out / f"{name}.fp32.onnx"
        fn(fp32)
        quantize_int8(fp32, out / f"{name}.onnx")
    (out / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())


PHONEMES = list("_^$ abcdefghijklmnopqrstuvwxyz,.?!'-")


def build_tts(out: Path, d_model: int = 32, seed: int = 3) -> None:
    """voice.onnx and voice.onnx.json into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = len(PHONEMES)
    inits = [numpy_helper.from_array(_w(rng, (n, d_model), 1.0), "embed"),
             numpy_helper.from_array(_w(rng, (d_model, SAMPLES_PER_PHONEME), 0.3), "w_wave"),
             numpy_helper.from_array(np.array([1, 1, -1], np.int64), "wave_shape"),
             numpy_helper.from_array(np.array([0], np.int64), "idx0")]
    nodes = [helper.make_node("Gather", ["embed", "input"], ["e"]),
             helper.make_node("MatMul", ["e", "w_wave"], ["frames"]),
             helper.make_node("Tanh", ["frames"], ["t"]),
             helper.make_node("Gather", ["scales", "idx0"], ["noise"]),
             helper.make_node("Mul", ["t", "noise"], ["scaled"]),
             helper.make_node("Reshape", ["scaled", "wave_shape"], ["output"])]
    graph = helper.make_graph(
        nodes, "tiny_vits",
        [helper.make_tensor_value_info("input", TensorProto.INT64, [1, "phonemes"]),
         helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "samples"])], inits)
    _save(graph, out / "voice.onnx")
    config = {"audio": {"sample_rate": TTS_RATE_HZ}, "phoneme_type": "text",
              "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
              "phoneme_id_map": {p: [i] for i, p in enumerate(PHONEMES)},
              "language": {"code": "en"}, "random_weights": True}
    (out / "voice.onnx.json").write_text(json.dumps(config, indent=1))

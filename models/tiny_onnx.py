"""A tiny random-weight ONNX voice with Piper's I/O, made with the onnx helper API.

(The test ASR is a real Whisper architecture with random weights: models/tiny_whisper.py.)

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
SAMPLES_PER_PHONEME = 256    # the tiny voice's fixed duration per phoneme id
TTS_RATE_HZ = 16000


def _w(rng, shape, scale=0.1) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="glasses-build-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


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

"""The speaker encoder: Resemblyzer's GE2E checkpoint to ONNX, and a random one for build-test.

    python -m glasses_firmware.models.convert_speaker export PRETRAINED_PT HPARAMS_PY OUT_DIR

`export` (run by `glasses models install` in a child process, so the firmware never loads
torch) reads the audio and model facts from Resemblyzer's `hparams.py` as text (never
imported), rebuilds the network in torch from them (a 3-layer LSTM over 40-band mel
frames, its last layer's final hidden state through a linear layer, ReLU, L2
normalisation), loads `pretrained.pt` into it after checking every tensor's name and
shape, exports `encoder.onnx` (input `mels` float32 [batch, frames, 40], output
`embedding` float32 [batch, 256]; batch and frames dynamic), checks the ONNX against
torch on random input (exit status 3 on a mismatch: the install refuses the model), and
writes `speaker_config.json`, the contract with the runtime (firmware/worker/voiceprint.py).

`build_random(out)` writes the same two files with a small seeded random LSTM (onnx
helper API, no torch): mechanics only, its embeddings say nothing about a voice.
"""

import ast
import json
import sys
from pathlib import Path

import numpy as np

from .verify import ModelCorrupt

ENCODER = "encoder.onnx"
CONFIG = "speaker_config.json"
INPUT, OUTPUT = "mels", "embedding"
OPSET = 17                    # the TorchScript exporter maps nn.LSTM to the ONNX LSTM op here
MAX_ABS_DIFF = 1e-4           # per component of a unit vector; measured about 1e-7
# Not in hparams.py: the defaults of Resemblyzer's `embed_utterance` (voice_encoder.py).
PARTIAL_RATE_PER_S = 1.3      # partial windows start every 1/1.3 s: 77 frames of 160
PARTIAL_MIN_COVERAGE = 0.75   # a last window less than 3/4 filled with audio is dropped
# The hparams.py keys the runtime and the network need.
HPARAM_KEYS = ("sampling_rate", "mel_window_length", "mel_window_step", "mel_n_channels",
               "partials_n_frames", "vad_window_length", "vad_moving_average_width",
               "vad_max_silence_length", "audio_norm_target_dBFS", "model_hidden_size",
               "model_embedding_size", "model_num_layers")
# Resemblyzer 0.1.4's values, for the random build-test model only (it must build with no
# package installed); the real install reads them from the file, and a test compares.
RESEMBLYZER_0_1_4 = {"sampling_rate": 16000, "mel_window_length": 25, "mel_window_step": 10,
                     "mel_n_channels": 40, "partials_n_frames": 160, "vad_window_length": 30,
                     "vad_moving_average_width": 8, "vad_max_silence_length": 6,
                     "audio_norm_target_dBFS": -30, "model_hidden_size": 256,
                     "model_embedding_size": 256, "model_num_layers": 3}
# In the checkpoint but not the network: GE2E's learned similarity scale and offset, used
# by the training loss only.
TRAINING_ONLY = ("similarity_weight", "similarity_bias")


def read_hparams(path: Path) -> dict:
    """The literal `name = value` assignments of a hparams.py, read as text (not imported)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as e:
        raise ModelCorrupt(f"{path}: cannot read Resemblyzer's hparams: {e}") from None
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue   # not a literal: nothing the runtime needs
    missing = [k for k in HPARAM_KEYS if not isinstance(found.get(k), (int, float))]
    if missing:
        raise ModelCorrupt(f"{path} lacks the number(s) {', '.join(missing)}; is it Resemblyzer's "
                           "hparams.py?")
    return {k: found[k] for k in HPARAM_KEYS}


def speaker_config(hp: dict, random_weights: bool = False) -> dict:
    """The runtime contract (speaker_config.json) from Resemblyzer's hparams."""
    rate = int(hp["sampling_rate"])
    hop = rate * int(hp["mel_window_step"]) // 1000
    step = int(round(rate / PARTIAL_RATE_PER_S / hop))
    frames = int(hp["partials_n_frames"])
    return {
        "sample_rate_hz": rate,
        "mel_bands": int(hp["mel_n_channels"]),
        # The encoder was trained on mel power (librosa's melspectrogram: Slaney mel scale and
        # area normalisation, 0 Hz to Nyquist, periodic Hann, centred frames), not its log.
        "features": "mel power, Slaney scale and norm, no log",
        "window_ms": int(hp["mel_window_length"]),
        "hop_ms": int(hp["mel_window_step"]),
        "partial_frames": frames,
        "partial_step_frames": step,
        "partial_overlap": round(1 - step / frames, 4),
        "partial_min_coverage": PARTIAL_MIN_COVERAGE,
        "volume_target_dbfs": float(hp["audio_norm_target_dBFS"]),
        "vad_window_ms": int(hp["vad_window_length"]),
        "vad_smoothing_windows": int(hp["vad_moving_average_width"]),
        "vad_max_silence_windows": int(hp["vad_max_silence_length"]),
        "embedding_size": int(hp["model_embedding_size"]),
        "input": INPUT,
        "output": OUTPUT,
        "random_weights": random_weights,
    }


def write_config(out: Path, config: dict) -> None:
    (out / CONFIG).write_text(json.dumps(config, indent=1) + "\n")


def expected_shapes(hp: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor the network needs, by the checkpoint's own names, from the hparams."""
    hidden, layers = int(hp["model_hidden_size"]), int(hp["model_num_layers"])
    shapes = {}
    for k in range(layers):
        inputs = int(hp["mel_n_channels"]) if k == 0 else hidden
        # nn.LSTM stacks the four gates (input, forget, cell, output) in one matrix.
        shapes[f"lstm.weight_ih_l{k}"] = (4 * hidden, inputs)
        shapes[f"lstm.weight_hh_l{k}"] = (4 * hidden, hidden)
        shapes[f"lstm.bias_ih_l{k}"] = (4 * hidden,)
        shapes[f"lstm.bias_hh_l{k}"] = (4 * hidden,)
    shapes["linear.weight"] = (int(hp["model_embedding_size"]), hidden)
    shapes["linear.bias"] = (int(hp["model_embedding_size"]),)
    return shapes


def load_state(pt: Path, hp: dict) -> dict:
    """The network's tensors from the checkpoint; ModelCorrupt naming any missing or misshapen one."""
    import torch
    try:
        # weights_only: the file is a pickle, and only tensors and plain containers may load.
        checkpoint = torch.load(pt, map_location="cpu", weights_only=True)
        state = checkpoint["model_state"]
    except Exception as e:  # torch raises many types for a bad file; one message here
        raise ModelCorrupt(f"{pt}: not a Resemblyzer checkpoint with a model_state: {e}") from None
    want = expected_shapes(hp)
    problems = [f"{k} missing" for k in want if k not in state]
    problems += [f"{k} is {tuple(state[k].shape)}, expected {shape}"
                 for k, shape in want.items() if k in state and tuple(state[k].shape) != shape]
    problems += [f"unexpected tensor {k}" for k in state if k not in want and k not in TRAINING_ONLY]
    if problems:
        raise ModelCorrupt(f"{pt} does not match the GE2E encoder of its hparams.py: "
                           + "; ".join(problems))
    return {k: state[k].float() for k in want}


def encoder_module(hp: dict):
    """The GE2E speaker encoder as a torch module (attribute names as in the checkpoint)."""
    import torch
    from torch import nn

    class SpeakerEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(int(hp["mel_n_channels"]), int(hp["model_hidden_size"]),
                                int(hp["model_num_layers"]), batch_first=True)
            self.linear = nn.Linear(int(hp["model_hidden_size"]), int(hp["model_embedding_size"]))

        def forward(self, mels):
            # The utterance's voice is the top layer's state after the last frame.
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    return SpeakerEncoder().eval()


def export_onnx(module, path: Path, n_mels: int) -> None:
    import torch
    import warnings
    example = torch.rand(2, 160, n_mels)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the torch.export one, which
        # needs onnxscript (not installed); it warns too that an LSTM's batch size could be
        # baked in: it is not (no initial state is passed), and check() runs other sizes.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch", 1: "frames"}, OUTPUT: {0: "batch"}},
                          opset_version=OPSET, dynamo=False)


def check(module, path: Path, n_mels: int) -> float:
    """The largest |ONNX - torch| over random inputs of several shapes; ModelCorrupt past MAX_ABS_DIFF."""
    import onnxruntime as ort
    import torch
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, frames in ((3, 160), (1, 160), (2, 57)):   # the time axis must be free, not 160
        # Mel power spans decades: squared normals over a spread of scales.
        mels = (rng.standard_normal((batch, frames, n_mels)) ** 2
                * 10.0 ** rng.uniform(-4, 1, (batch, 1, 1))).astype(np.float32)
        with torch.no_grad():
            want = module(torch.from_numpy(mels)).numpy()
        got = session.run([OUTPUT], {INPUT: mels})[0]
        if got.shape != want.shape:
            raise ModelCorrupt(f"{path} gives shape {got.shape} for {mels.shape}, torch {want.shape}")
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= MAX_ABS_DIFF:
        raise ModelCorrupt(f"{path} differs from the torch encoder by up to {worst:.2e} "
                           f"(at most {MAX_ABS_DIFF:.0e} allowed); refusing it")
    return worst


def export(pt: Path, hparams: Path, out: Path) -> float:
    """encoder.onnx and speaker_config.json into `out`; returns the check's largest difference."""
    hp = read_hparams(hparams)
    state = load_state(pt, hp)
    module = encoder_module(hp)
    module.load_state_dict(state, strict=True)
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(module, out / ENCODER, int(hp["mel_n_channels"]))
    worst = check(module, out / ENCODER, int(hp["mel_n_channels"]))
    write_config(out, speaker_config(hp))
    return worst


def build_random(out: Path, hidden: int = 32, seed: int = 5) -> None:
    """A seeded random-weight encoder with the real one's I/O and config (build-test)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hp = RESEMBLYZER_0_1_4
    n_mels, size = hp["mel_n_channels"], hp["model_embedding_size"]
    rng = np.random.default_rng(seed)

    def w(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [w("W", (1, 4 * hidden, n_mels), 0.3), w("R", (1, 4 * hidden, hidden), 0.3),
             w("B", (1, 8 * hidden), 0.1), w("proj", (hidden, size), 0.5),
             # A positive offset keeps some of every ReLU output, so the norm is never 0.
             numpy_helper.from_array((np.abs(rng.standard_normal(size)) + 0.1).astype(np.float32),
                                     "offset"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    nodes = [helper.make_node("Transpose", [INPUT], ["time_major"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["time_major", "W", "R", "B"], ["", "h_last"],
                              hidden_size=hidden),
             helper.make_node("Squeeze", ["h_last", "axis0"], ["h"]),
             helper.make_node("MatMul", ["h", "proj"], ["p"]),
             helper.make_node("Add", ["p", "offset"], ["q"]),
             helper.make_node("Relu", ["q"], ["raw"]),
             helper.make_node("ReduceL2", ["raw", "axis1"], ["norm"], keepdims=1),
             helper.make_node("Div", ["raw", "norm"], [OUTPUT])]
    graph = helper.make_graph(
        nodes, "speaker_random",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", "frames", n_mels])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              producer_name="glasses-build-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / ENCODER))
    write_config(out, speaker_config(hp, random_weights=True))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "export":
        try:
            worst = export(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        except ModelCorrupt as e:
            print(f"refused: {e}", flush=True)
            return 3
        print(f"encoder ONNX vs torch: largest difference {worst:.1e} (at most {MAX_ABS_DIFF:.0e}) "
              "on batches of 3 x 160, 1 x 160 and 2 x 57 frames", flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

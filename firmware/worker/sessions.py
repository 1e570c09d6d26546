"""ONNX Runtime sessions as the worker makes them: caller's threads, full graph optimisation.

External data (`model.onnx.data`) is opened by ONNX Runtime itself, which memory-maps it
where the file layout allows; weights it pre-packs (MatMulNBits) are copied once at load.
"""

from pathlib import Path

import onnxruntime as ort

from glasses_firmware.drivers.errors import GlassesError


class SessionError(GlassesError, RuntimeError):
    """ONNX Runtime refused a model file (bad graph, wrong inputs); names the file."""


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # warnings about unused initializers are noise here
    return opts


def make_session(path: Path, threads: int) -> ort.InferenceSession:
    """An ORT CPU session on `path`; SessionError naming the file if ORT refuses it."""
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own pybind types; translate them here only
        raise SessionError(f"onnxruntime cannot load {path}: {e}") from None

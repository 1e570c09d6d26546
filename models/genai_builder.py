"""onnxruntime-genai's model builder run as a program: the step the test models share.

tiny_llm.py (int4 Qwen2) and tiny_whisper.py (Whisper) build their random-weight models
with it; a bounded run with the builder's own error when it fails.
"""

import subprocess
import sys
from pathlib import Path

BUILDER_TIMEOUT_S = 3600


def run(hf_dir: Path, out_dir: Path, cache_dir: Path, precision: str,
        extra_options: dict[str, str] | None = None) -> None:
    """Build `hf_dir` (a Hugging Face folder) into `out_dir`; RuntimeError with the builder's
    last output if it fails or runs past BUILDER_TIMEOUT_S."""
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
           "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(cache_dir)]
    if extra_options:
        cmd += ["--extra_options", *(f"{k}={v}" for k, v in extra_options.items())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILDER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"onnxruntime-genai builder did not finish in {BUILDER_TIMEOUT_S} s: "
                           f"{' '.join(cmd)}") from None
    if proc.returncode != 0:
        raise RuntimeError("onnxruntime-genai builder failed:\n" + proc.stderr[-3000:])

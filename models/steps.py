"""Run one conversion step as a child process: a deadline, elapsed seconds, the log's tail on failure.

Conversions load torch and transformers and peak at gigabytes; in a child process that
memory is returned when the step ends, a hung step can be killed at its deadline, and the
firmware's own process never imports torch.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

from .progress import Progress
from .verify import ModelError

REPO = Path(__file__).resolve().parent.parent
TAIL_CHARS = 3000


class StepFailed(ModelError, RuntimeError):
    """A conversion step exited with an error or ran past its deadline; the log's tail says why."""


def child_env() -> dict:
    """Offline for sure (no hub look-ups), and able to import this repository's packages."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(args: list[str], label: str, timeout_s: float, log_path: Path, progress: Progress,
        poll_s: float = 1.0) -> str:
    """Run `python args...`; returns its output. StepFailed with the log's tail on failure."""
    cmd = [sys.executable, *map(str, args)]
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), cwd=REPO)
        try:
            while True:
                try:
                    code = proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - started
                    if elapsed > timeout_s:
                        _stop(proc)
                        raise StepFailed(f"{label} ran past its {timeout_s:.0f} s deadline and was "
                                         f"stopped; the end of its log ({log_path}):\n"
                                         f"{_tail(log_path)}") from None
                    progress.ticking(label, elapsed)
        except BaseException:
            _stop(proc)       # Ctrl-C or a deadline: never leave a 5 GB child behind
            raise
    elapsed = time.monotonic() - started
    if code != 0:
        raise StepFailed(f"{label} failed (exit status {code}) after {elapsed:.0f} s; the end of "
                         f"its log ({log_path}):\n{_tail(log_path)}")
    progress.phase_done(label, elapsed)
    return log_path.read_text(errors="replace")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass  # the kernel reaps it; nothing more we can do from here


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(log unreadable: {e})"
    return text[-TAIL_CHARS:].rstrip() or "(no output)"


def genai_builder(hf_dir: Path, out_dir: Path, cache_dir: Path, precision: str,
                  extra_options: dict[str, str], label: str, timeout_s: float, log_path: Path,
                  progress: Progress) -> None:
    """The onnxruntime-genai model builder on a Hugging Face folder (CPU execution provider).

    Its flags are passed explicitly: `--help` of builder 0.18 crashes on a `%` in its text.
    """
    args = ["-m", "onnxruntime_genai.models.builder", "-i", hf_dir, "-o", out_dir,
            "-p", precision, "-e", "cpu", "-c", cache_dir]
    if extra_options:
        args += ["--extra_options", *(f"{k}={v}" for k, v in extra_options.items())]
    run(args, label, timeout_s, log_path, progress)

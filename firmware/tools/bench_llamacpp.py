"""llama.cpp on the same weights, for `glasses bench`: the GGUF the installed LLM was made from.

llama-cpp-python is optional (pip builds it from source, about ten minutes on two cores), so
the bench reports it as missing rather than failing. The GGUF is not kept after the install
(the converted model is what the glasses run); it is joined again from the installed
packages into a temporary directory, checked against its pinned sha256.
"""

import contextlib
import tempfile
import time
from pathlib import Path


class LlamaCppMissing(RuntimeError):
    """llama-cpp-python is not installed; the message says how to add it."""


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def joined_gguf():
    """The LLM's GGUF joined from the installed packages into a temp dir (deleted after)."""
    from glasses_firmware.models import packages
    from glasses_firmware.models.progress import Progress
    spec = packages.load()["llm"]
    located = packages.locate(spec)
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="glasses-gguf-") as tmp:
        (joined,) = spec.joined
        yield packages.join([located[i] for i in spec.parts(joined.name)], joined,
                            Path(tmp) / joined.name, progress)


class DirectLlamaCpp:
    """llama.cpp through llama-cpp-python, greedy, on `threads` threads."""

    def __init__(self, gguf: Path, threads: int, n_ctx: int = 2048):
        if not available():
            raise LlamaCppMissing("llama-cpp-python is not installed; `pip install "
                                  "llama-cpp-python` builds it from source (about 10 min)")
        from llama_cpp import Llama
        self.llm = Llama(model_path=str(gguf), n_threads=threads, n_threads_batch=threads,
                         n_ctx=n_ctx, verbose=False)
        import llama_cpp
        self.version = llama_cpp.__version__

    def _tokens(self, prompt_text: str) -> list[int]:
        # The same chat-formatted text onnxruntime-genai gets, so both see the same tokens.
        return self.llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True)

    def run(self, prompt_text: str, tokens: int) -> tuple[float, float, int]:
        """(time to first token s, decode tok/s after it, tokens made) for one greedy answer."""
        self.llm.reset()                     # no prefix reuse: every run prefills in full
        ids = self._tokens(prompt_text)
        t0 = time.perf_counter()
        first = last = None
        n = 0
        for _ in self.llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0):
            last = time.perf_counter()
            first = first or last
            n += 1
            if n >= tokens:
                break
        ttft = (first - t0) if first else float("nan")
        rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
        return ttft, rate, n

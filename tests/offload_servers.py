"""The user's servers, run for real on loopback for the offload tests and bench.

llama-cpp-python's OpenAI-compatible server on the GGUF the glasses' LLM was made from,
wyoming-faster-whisper on the shipped Whisper's CTranslate2 files, and a bare listening
socket that accepts and never answers. The servers live in their own venv
(.venv/offload-servers, made by scripts/setup.sh): their dependencies are theirs, as on a
user's server, and never mix with the firmware's. Nothing listens beyond 127.0.0.1.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS_PY = ROOT / ".venv" / "offload-servers" / "bin" / "python"
SERVER_MODEL = "qwen-offload"       # the alias the server answers under: tells who answered


def missing() -> str | None:
    """Why the servers cannot run here, or None."""
    if not SERVERS_PY.exists():
        return f"{SERVERS_PY} is missing; run scripts/setup.sh (it builds the offload servers)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1:port; `kill()` is SIGKILL, as a crash or power cut."""

    def __init__(self, argv: list[str], port: int, log: Path, ready, env=None):
        self.port, self.log_path, self.argv = port, log, argv
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                    **(env or {})}
        self.ready = ready
        self.proc = None
        self.start()

    def start(self, timeout_s: float = 60.0) -> None:
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.ready(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[2:4]} did not start: {self.text()[-1500:]}")
            time.sleep(0.2)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()

    stop = kill


def _http_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as r:
            return json.loads(r.read())["data"][0]["id"] == SERVER_MODEL
    except (OSError, ValueError, KeyError, IndexError):
        return False


def _tcp_ready(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@contextlib.contextmanager
def gguf_file():
    """The LLM's GGUF, joined from the installed model packages (deleted after)."""
    from firmware.tools.bench_llamacpp import joined_gguf
    with joined_gguf() as path:
        yield path


def llama_server(gguf: Path, log: Path, port: int | None = None, threads: int = 2) -> Server:
    port = port or free_port()
    argv = [str(SERVERS_PY), "-m", "llama_cpp.server", "--model", str(gguf),
            "--model_alias", SERVER_MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", str(threads), "--n_ctx", "2048"]
    return Server(argv, port, log, _http_ready)


@contextlib.contextmanager
def whisper_dir():
    """The shipped Whisper as faster-whisper loads it: model.bin joined, the rest linked."""
    from models import packages
    from models.progress import Progress
    spec = packages.load()["asr"]
    located = packages.locate(spec)
    with tempfile.TemporaryDirectory(prefix="glasses-ct2-") as tmp:
        (joined,) = spec.joined
        packages.join([located[i] for i in spec.parts(joined.name)], joined,
                      Path(tmp) / joined.name, Progress())
        data = next(p for i, p in located.items() if i.path.endswith("config.json")).parent
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            os.symlink(data / name, Path(tmp) / name)
        yield Path(tmp)


def whisper_server(model_dir: Path, log: Path, port: int | None = None) -> Server:
    port = port or free_port()
    exe = SERVERS_PY.parent / "wyoming-faster-whisper"
    data = log.parent / "wfw-data"
    data.mkdir(exist_ok=True)
    # A local model path, --local-files-only and HF_HUB_OFFLINE: it never asks the hub.
    argv = [str(exe), "--uri", f"tcp://127.0.0.1:{port}", "--model", str(model_dir),
            "--data-dir", str(data), "--local-files-only", "--cpu-threads", "1",
            "--beam-size", "1", "--language", "en"]
    return Server(argv, port, log, _tcp_ready)


class SilentServer:
    """Accepts connections and never sends a byte (a hung server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopping.is_set():
            with contextlib.suppress(OSError):
                self.held.append(self.sock.accept()[0])

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=2)
        for s in self.held + [self.sock]:
            s.close()

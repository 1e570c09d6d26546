"""`python -m glasses_firmware.firmware.tools.bench_offload`: first audio with offload against on-board.

One run of the real firmware on the sim board (in this process, real time, the installed
models), with the user's servers on loopback: llama-cpp-python's OpenAI server on the GGUF
the glasses' LLM was made from, and wyoming-faster-whisper on the shipped Whisper. Turns
alternate, offload on (LLM + ASR to the servers) and off (the same question on the
glasses), so load on the machine falls on both alike; first audio is from the end of the
spoken question to the first sample of the answer queued to the speaker (as `glasses
bench`'s assistant.first_audio_ms). The servers share the board's cores here: the ratio is
what the protocol and llama.cpp cost or save, not what a bigger machine would.

The server launchers below are used by tests/test_offload.py too. The servers live in
.venv/offload-servers (scripts/setup.sh), apart from the firmware's own packages.
"""

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RUNS = 3
QUESTION = "why is the sky blue"

ROOT = Path(__file__).resolve().parents[2]
SERVERS_PY = ROOT / ".venv" / "offload-servers" / "bin" / "python"
PIPER_VOICE = "en_US-joe-medium"
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
    from glasses_firmware.firmware.tools.bench_llamacpp import joined_gguf
    with joined_gguf() as path:
        yield path


def llama_server(gguf: Path, log: Path, port: int | None = None, threads: int = 2,
                 tls: tuple[Path, Path] | None = None, api_key: str = "") -> Server:
    """llama-cpp-python's server; `tls` (certificate, key) serves HTTPS, `api_key` wants a
    bearer token (then readiness is the port accepting: it binds once the model is loaded)."""
    port = port or free_port()
    argv = [str(SERVERS_PY), "-m", "llama_cpp.server", "--model", str(gguf),
            "--model_alias", SERVER_MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", str(threads), "--n_ctx", "2048"]
    if tls:
        argv += ["--ssl_certfile", str(tls[0]), "--ssl_keyfile", str(tls[1])]
    if api_key:
        argv += ["--api_key", api_key]
    return Server(argv, port, log, _tcp_ready if tls or api_key else _http_ready)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made with openssl: a server's own CA, as at home."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@contextlib.contextmanager
def whisper_dir():
    """The shipped Whisper as faster-whisper loads it: model.bin joined, the rest linked."""
    from glasses_firmware.models import packages
    from glasses_firmware.models.progress import Progress
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


def whisper_server(model_dir: Path, log: Path, port: int | None = None, threads: int = 1) -> Server:
    port = port or free_port()
    exe = SERVERS_PY.parent / "wyoming-faster-whisper"
    data = log.parent / "wfw-data"
    data.mkdir(exist_ok=True)
    # A local model path, --local-files-only and HF_HUB_OFFLINE: it never asks the hub.
    argv = [str(exe), "--uri", f"tcp://127.0.0.1:{port}", "--model", str(model_dir),
            "--data-dir", str(data), "--local-files-only", "--cpu-threads", str(threads),
            "--beam-size", "1", "--language", "en"]
    return Server(argv, port, log, _tcp_ready)



def _health_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def openai_whisper_server(model_dir: Path, log: Path, port: int | None = None) -> Server:
    """faster-whisper-server: the OpenAI transcription API on the shipped Whisper."""
    port = port or free_port()
    argv = [str(SERVERS_PY.parent / "faster-whisper-server"), str(model_dir),
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    return Server(argv, port, log, _health_ready)


@contextlib.contextmanager
def piper_dir():
    """The glasses' Piper voice under the file names wyoming-piper looks for."""
    from glasses_firmware.models.manifest import default_models_dir
    voice = (default_models_dir() or Path("models/installed")) / "piper-en_US-joe-medium"
    with tempfile.TemporaryDirectory(prefix="glasses-piper-") as tmp:
        for ext in (".onnx", ".onnx.json"):
            os.symlink((voice / f"voice{ext}").resolve(), Path(tmp) / f"{PIPER_VOICE}{ext}")
        yield Path(tmp)


def piper_server(voice_dir: Path, log: Path, port: int | None = None) -> Server:
    """wyoming-piper (Home Assistant's TTS) on the glasses' own Piper voice."""
    port = port or free_port()
    argv = [str(SERVERS_PY), "-m", "wyoming_piper", "--voice", PIPER_VOICE,
            "--uri", f"tcp://127.0.0.1:{port}", "--data-dir", str(voice_dir), "--local-files-only"]
    return Server(argv, port, log, _tcp_ready)


async def _measure(models_dir: Path, llm_url: str, asr_url: str, runs: int) -> dict:
    from glasses_firmware import boards
    from glasses_firmware.drivers.clock import SimClock

    from ..app import Firmware
    from ..offload import settings
    from .bench_assistant import _speech, _turn
    servers = [settings.Server("llm", "openai", llm_url, model=SERVER_MODEL, deadline_s=10),
               settings.Server("asr", "wyoming", asr_url, deadline_s=10)]
    audio, end_s = _speech(QUESTION)
    rows = {"offload": [], "onboard": []}
    served: dict[str, int] = {}          # requests the servers answered
    fell_back: dict[str, int] = {}       # and those the glasses answered instead (want 0)
    with tempfile.TemporaryDirectory(prefix="glasses-bench-offload-") as tmp:
        fw = Firmware(boards.load("sim"), Path(tmp), SimClock(realtime=True), models_dir=models_dir)
        sampler = asyncio.create_task(fw.sample_forever())
        try:
            await fw.start_workers()
            await asyncio.sleep(2.0)               # listener and worker settle
            for i in range(runs):
                # Interleaved, and the order flipped every run: neither side always goes first.
                for side in (("offload", "onboard") if i % 2 == 0 else ("onboard", "offload")):
                    if side == "offload":
                        for s in servers:
                            fw.offload.set(s)
                    else:
                        for role, st in fw.offload.status()["roles"].items():
                            served[role] = served.get(role, 0) + st["served"]
                            fell_back[role] = fell_back.get(role, 0) + st["fallbacks"]
                        fw.offload.clear("all")
                    fw.conversation.memory.clear()     # the same question, afresh, each time
                    rows[side].append(await _turn(fw, audio, end_s))
        finally:
            sampler.cancel()
            await fw.shutdown()
    med = {side: {k: (round(statistics.median(r[k] for r in rs), 1) if rs[0][k] is not None
                      else None) for k in ("first_audio_ms", "endpoint", "recognize",
                                           "llm_first_token", "tts_first_chunk")}
           for side, rs in rows.items()}
    return {"offload_first_audio_ms": med["offload"]["first_audio_ms"],
            "onboard_first_audio_ms": med["onboard"]["first_audio_ms"],
            "ratio": round(med["offload"]["first_audio_ms"] / med["onboard"]["first_audio_ms"], 2),
            "stages_ms": med, "runs": runs, "question": QUESTION,
            "per_run_ms": {side: [round(r["first_audio_ms"]) for r in rs] for side, rs in rows.items()},
            "served": served, "fallbacks": fell_back}


def measure(models_dir: Path, runs: int = RUNS) -> dict:
    """Start the servers, bench, stop them; {"offload": {...}} or {"offload": {"error"}}."""
    if missing():
        return {"offload": {"error": missing()}}
    from glasses_firmware.drivers.errors import GlassesError
    try:
        return _measure_with_servers(models_dir, runs)
    except (GlassesError, OSError, RuntimeError) as e:
        # The model packages or a server missing: the rest of `glasses bench` still reports.
        return {"offload": {"error": f"{type(e).__name__}: {e}"}}


def _measure_with_servers(models_dir: Path, runs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="glasses-offload-servers-") as tmp, \
            gguf_file() as gguf, whisper_dir() as ct2:
        llama = whisper = None
        try:
            llama = llama_server(gguf, Path(tmp) / "llama.log")
            # As many threads as the glasses' own ASR gets (the board's cores).
            whisper = whisper_server(ct2, Path(tmp) / "wyoming.log", threads=os.cpu_count() or 1)
            result = asyncio.run(_measure(Path(models_dir), f"http://127.0.0.1:{llama.port}/v1",
                                          f"tcp://127.0.0.1:{whisper.port}", runs))
        finally:
            for s in (llama, whisper):
                if s is not None:
                    s.kill()
    return {"offload": result}


def main(argv=None) -> int:
    import argparse
    from glasses_firmware.models.manifest import default_models_dir
    p = argparse.ArgumentParser(prog="python -m glasses_firmware.firmware.tools.bench_offload",
                                description="first audio with offload against on-board")
    p.add_argument("--models", type=Path, default=None, help="models directory (default: installed)")
    p.add_argument("--runs", type=int, default=RUNS)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    models_dir = a.models or default_models_dir()
    if models_dir is None:
        print("no installed models; run scripts/setup.sh or pass --models DIR", file=sys.stderr)
        return 2
    out = measure(models_dir, a.runs)["offload"]
    if a.json or "error" in out:
        print(json.dumps(out))
        return 1 if "error" in out else 0
    print(f"first audio: offload {out['offload_first_audio_ms']:.0f} ms, on-board "
          f"{out['onboard_first_audio_ms']:.0f} ms (ratio {out['ratio']:.2f}; median of "
          f"{out['runs']} interleaved turns each, served {out['served']}, fell back {out['fallbacks']})")
    for side, st in out["stages_ms"].items():
        print(f"  {side:<8} " + ", ".join(f"{k} {v:.0f}" for k, v in st.items() if v is not None))
    return 0


if __name__ == "__main__":
    sys.exit(main())

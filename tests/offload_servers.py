"""The user's servers for the offload tests: the launchers of firmware/tools/bench_offload.py
(llama-cpp-python's OpenAI server, wyoming-faster-whisper, faster-whisper-server,
wyoming-piper), and a server that hangs."""

import contextlib
import socket
import threading

from glasses_firmware.firmware.tools.bench_offload import (SERVER_MODEL, free_port, gguf_file,  # noqa: F401
                                          llama_server, missing, openai_whisper_server,
                                          piper_dir, piper_server, self_signed, whisper_dir,
                                          whisper_server)


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

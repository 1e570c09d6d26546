"""A Wyoming client (Home Assistant's voice services): speech to text and text to speech.

Wyoming is a stream of typed events over TCP. Each event is a JSON header line
`{"type", "version", "data_length", "payload_length"}` followed by `data_length` bytes of
JSON data (merged into the header's `data`) and `payload_length` bytes of binary payload
(PCM audio). Written from the protocol's description rather than on the `wyoming` package:
the client is these few functions, and the glasses image gains no dependency; the tests
run it against the reference servers, which are built on that package.

ASR: transcribe {language} -> audio-start {rate, width, channels} -> audio-chunk* ->
audio-stop, answered by transcript {text}. TTS: synthesize {text}, answered by
audio-start, audio-chunk*, audio-stop. describe -> info serves as the health probe.
"""

import asyncio
import json

import numpy as np

from .http import OffloadError, OffloadTimeout

VERSION = "1.5.0"             # the protocol version we write; servers ignore it
CHUNK_SAMPLES = 1024          # 64 ms of 16 kHz audio per audio-chunk
MAX_HEADER_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
RATE_HZ = 16000


def encode(kind: str, data: dict | None = None, payload: bytes = b"") -> bytes:
    header: dict = {"type": kind, "version": VERSION}
    body = json.dumps(data, ensure_ascii=False).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


async def read_event(reader: asyncio.StreamReader) -> tuple[str, dict, bytes]:
    """(type, data, payload) of the next event; OffloadError if the stream ends or is garbled."""
    line = await reader.readline()
    if not line:
        raise OffloadError("the Wyoming server closed the connection")
    try:
        header = json.loads(line)
        kind = header["type"]
        data = dict(header.get("data") or {})
        n_data = int(header.get("data_length") or 0)
        n_payload = int(header.get("payload_length") or 0)
    except (ValueError, KeyError, TypeError):
        raise OffloadError(f"not a Wyoming event: {line[:60]!r}") from None
    if n_data > MAX_HEADER_BYTES or n_payload > MAX_PAYLOAD_BYTES or n_data < 0 or n_payload < 0:
        raise OffloadError(f"a Wyoming {kind} event declares {n_data + n_payload} bytes; too many")
    if n_data:
        try:
            data.update(json.loads(await reader.readexactly(n_data)))
        except ValueError:
            raise OffloadError(f"the data of a Wyoming {kind} event is not JSON") from None
    payload = await reader.readexactly(n_payload) if n_payload else b""
    return kind, data, payload


class Connection:
    """One TCP connection to a Wyoming server, with a deadline on every exchange."""

    def __init__(self, server):
        self.server = server
        self.reader = self.writer = None

    async def __aenter__(self):
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.server.host, self.server.port,
                                        limit=MAX_HEADER_BYTES), self.server.deadline_s)
        except asyncio.TimeoutError:
            raise OffloadTimeout(f"{self.server.host}:{self.server.port} did not accept within "
                                 f"{self.server.deadline_s:g} s") from None
        except OSError as e:
            raise OffloadError(f"cannot reach {self.server.host}:{self.server.port} "
                               f"({e.strerror or type(e).__name__})") from None
        return self

    async def __aexit__(self, *exc):
        self.writer.close()

    async def send(self, *events: bytes) -> None:
        try:
            self.writer.write(b"".join(events))
            await self.writer.drain()
        except OSError as e:
            raise OffloadError(f"the Wyoming server went away ({type(e).__name__})") from None

    async def expect(self, kinds: tuple[str, ...], timeout_s: float) -> tuple[str, dict, bytes]:
        """The next event of one of `kinds` (others, e.g. progress, are skipped)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            try:
                event = await asyncio.wait_for(read_event(self.reader),
                                               max(0.01, end - loop.time()))
            except asyncio.TimeoutError:
                raise OffloadTimeout(f"the Wyoming server did not answer within "
                                     f"{timeout_s:g} s") from None
            except (OSError, asyncio.IncompleteReadError) as e:
                raise OffloadError(f"the Wyoming server broke off ({type(e).__name__})") from None
            if event[0] == "error":
                raise OffloadError(f"the Wyoming server failed: {event[1].get('text', '')[:160]}")
            if event[0] in kinds:
                return event


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767).astype("<i2").tobytes()


async def transcribe(server, audio: np.ndarray, language: str | None = None) -> dict:
    """{"text", "language", "language_prob"} of 16 kHz mono audio, within `server.deadline_s`."""
    fmt = {"rate": RATE_HZ, "width": 2, "channels": 1}
    pcm = pcm16(audio)
    step = CHUNK_SAMPLES * 2
    ask = {"name": server.model} if server.model else {}
    if language:
        ask["language"] = language
    events = [encode("transcribe", ask), encode("audio-start", fmt)]
    events += [encode("audio-chunk", fmt, pcm[i:i + step]) for i in range(0, len(pcm), step)]
    events.append(encode("audio-stop"))
    async with Connection(server) as conn:
        await conn.send(*events)
        _, data, _ = await conn.expect(("transcript",), server.deadline_s)
    text = data.get("text")
    if not isinstance(text, str):
        raise OffloadError("the Wyoming transcript has no text")
    return {"text": text.strip(), "language": data.get("language") or language,
            "language_prob": None}


async def synthesize(server, text: str) -> tuple[np.ndarray, int]:
    """(float32 mono audio, rate in Hz) of `text`; the whole of it within `server.deadline_s`."""
    data = {"text": text}
    if server.model:
        data["voice"] = {"name": server.model}
    loop = asyncio.get_running_loop()
    end = loop.time() + server.deadline_s
    chunks, rate, width, channels = [], None, 2, 1
    async with Connection(server) as conn:
        await conn.send(encode("synthesize", data))
        while True:
            kind, info, payload = await conn.expect(("audio-start", "audio-chunk", "audio-stop"),
                                                    max(0.01, end - loop.time()))
            if kind == "audio-stop":
                break
            rate = int(info.get("rate", rate or 22050))
            width, channels = int(info.get("width", width)), int(info.get("channels", channels))
            if kind == "audio-chunk":
                chunks.append(payload)
    if width != 2 or rate is None:
        raise OffloadError(f"the Wyoming voice sent {8 * width}-bit audio; only 16-bit is played")
    samples = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


async def probe(server, timeout_s: float) -> str:
    """The server's first program name (`describe` -> `info`); OffloadError if it is silent."""
    async with Connection(server) as conn:
        await conn.send(encode("describe"))
        _, info, _ = await conn.expect(("info",), timeout_s)
    for kind in ("asr", "tts"):
        for program in info.get(kind) or []:
            if isinstance(program, dict) and program.get("name"):
                return str(program["name"])
    return ""

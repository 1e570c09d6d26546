"""The OpenAI HTTP API as llama.cpp's server, Ollama and vLLM speak it: streamed chat
completions (server-sent events: `data: {json}` lines, `data: [DONE]` at the end) for the
LLM, `/audio/transcriptions` and `/audio/translations` (a multipart WAV upload) for the ASR.

Paths are relative to the server's URL, which names the API root (`https://host:8080/v1`).
"""

import io
import json
import secrets
import wave

import numpy as np

from . import http
from .http import OffloadError

RATE_HZ = 16000
# What the OpenAI API's verbose transcription calls a language, for the codes we answer in.
LANGUAGE_NAMES = {"english": "en", "chinese": "zh", "korean": "ko"}


async def chat(server, messages: list[dict], max_tokens: int):
    """Yield the answer's text pieces as the server streams them.

    The first piece must come within `server.deadline_s` of the request, and every later
    one within as long again: OffloadTimeout otherwise; OffloadError if the server refuses
    the request or the stream ends without `[DONE]` (a server killed mid-answer)."""
    body = {"model": server.model or "default", "messages": messages, "stream": True,
            "max_tokens": int(max_tokens), "temperature": 0.0}
    resp = await http.request(server, "POST", "/chat/completions", json.dumps(body).encode(),
                              timeout_s=server.deadline_s)
    try:
        if resp.status != 200:
            raw = await resp.body(server.deadline_s, limit=65536)
            raise OffloadError(http.error_text(resp.status, resp.reason, raw))
        buf = b""
        while True:
            data = await resp.read_some(server.deadline_s)
            if not data:
                raise OffloadError("the answer stream ended without [DONE]")
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue            # comments (`: ping`), `event:` and blank lines
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                piece = _delta(payload)
                if piece:
                    yield piece
    finally:
        resp.close()


def _delta(payload: bytes) -> str:
    try:
        event = json.loads(payload)
    except ValueError:
        raise OffloadError(f"a streamed event is not JSON: {payload[:60]!r}") from None
    if isinstance(event, dict) and "error" in event:
        raise OffloadError(f"the server failed mid-answer: {str(event['error'])[:160]}")
    try:
        return event["choices"][0].get("delta", {}).get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


def wav_bytes(audio: np.ndarray, rate_hz: int = RATE_HZ) -> bytes:
    """16-bit mono WAV of float audio in [-1, 1]."""
    pcm = (np.clip(np.asarray(audio, np.float32).reshape(-1), -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def multipart(fields: dict[str, str], file_name: str, file_bytes: bytes) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload of `fields` and one file."""
    boundary = "glasses" + secrets.token_hex(12)
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                f"{value}\r\n").encode()
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{file_name}\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
    out += file_bytes + f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


async def transcribe(server, audio: np.ndarray, task: str = "transcribe",
                     language: str | None = None) -> dict:
    """{"text", "language", "language_prob"} from the server, within `server.deadline_s`."""
    fields = {"model": server.model or "whisper-1", "response_format": "verbose_json"}
    if language:
        fields["language"] = language
    body, ctype = multipart(fields, "speech.wav", wav_bytes(audio))
    path = "/audio/translations" if task == "translate" else "/audio/transcriptions"
    resp = await http.request(server, "POST", path, body, ctype, timeout_s=server.deadline_s)
    try:
        if resp.status != 200:
            raw = await resp.body(server.deadline_s, limit=65536)
            raise OffloadError(http.error_text(resp.status, resp.reason, raw))
        got = await resp.json(server.deadline_s)
    finally:
        resp.close()
    if not isinstance(got, dict) or not isinstance(got.get("text"), str):
        raise OffloadError("the transcription answer has no text")
    lang = got.get("language")
    lang = LANGUAGE_NAMES.get(str(lang).lower(), lang) if lang else language
    return {"text": got["text"].strip(), "language": lang, "language_prob": None}


async def probe(server, timeout_s: float) -> str:
    """The first model the server lists (`GET /models`); OffloadError if it does not answer."""
    resp = await http.request(server, "GET", "/models", timeout_s=timeout_s)
    try:
        raw = await resp.body(timeout_s, limit=1024 * 1024)
    finally:
        resp.close()
    if resp.status != 200:
        raise OffloadError(http.error_text(resp.status, resp.reason, raw))
    try:
        data = json.loads(raw).get("data") or [{}]
        return str(data[0].get("id", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""
